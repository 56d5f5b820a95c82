"""djdeploy: deploy a Django application to Google Cloud, imperatively and safely.

    from deployer import Config, Target, up, plan, status, destroy, unlock, logs, LogQuery
    from deployer import manage, rollback, rotate_secrets

Everything is loaded on first use so that `import deployer` (and `djdeploy --help`) stay light,
and so that importing one bottom module (the emulator imports `deployer.regions`) loads no other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = [
    "Config",
    "LogQuery",
    "Target",
    "destroy",
    "logs",
    "manage",
    "plan",
    "rollback",
    "rotate_secrets",
    "snapshot",
    "status",
    "unlock",
    "up",
]

if TYPE_CHECKING:
    from deployer.api import (
        LogQuery,
        Target,
        destroy,
        logs,
        manage,
        plan,
        rollback,
        rotate_secrets,
        snapshot,
        status,
        unlock,
        up,
    )
    from deployer.config import Config


def __getattr__(name: str) -> Any:
    if name == "Config":
        from deployer.config import Config

        return Config
    if name in (
        "LogQuery",
        "Target",
        "destroy",
        "logs",
        "manage",
        "plan",
        "rollback",
        "rotate_secrets",
        "snapshot",
        "status",
        "unlock",
        "up",
    ):
        from deployer import api

        return getattr(api, name)
    raise AttributeError(f"module 'deployer' has no attribute {name!r}")
