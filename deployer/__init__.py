"""djdeploy: deploy a Django application to Google Cloud, imperatively and safely.

    from deployer import Config, Target, up, plan, status, destroy, unlock

The operations are loaded on first use so that `import deployer` (and `djdeploy --help`) stay
light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deployer.config import Config

__version__ = "0.1.0"
__all__ = ["Config", "Target", "destroy", "plan", "snapshot", "status", "unlock", "up"]

if TYPE_CHECKING:
    from deployer.api import Target, destroy, plan, snapshot, status, unlock, up


def __getattr__(name: str) -> Any:
    if name in ("Target", "destroy", "plan", "snapshot", "status", "unlock", "up"):
        from deployer import api

        return getattr(api, name)
    raise AttributeError(f"module 'deployer' has no attribute {name!r}")
