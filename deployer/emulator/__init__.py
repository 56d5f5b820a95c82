"""djdeploy's local, stateful fake of the Google Cloud APIs it calls (docs/emulator.md).

from deployer.emulator import Emulator, serve
running = serve(Emulator(time_scale=0.001))
... clients with api_endpoint=running.url ...
running.control.add_fault(method="POST", path=":enable$", code=503, times=1)
running.stop()

The names below are imported on first use (PEP 562): a command that only talks to the
background emulator (``deployer.emulator.daemon``, its control client) does not import the
server and every API's handlers (about 0.1 s of CPU on each `--emulator` command).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .control import EmulatorControl
    from .errors import ApiError
    from .routing import Request, Response, Router
    from .server import API_MODULES, Emulator, RunningEmulator, main_serve, serve
    from .store import Store

#: each exported name -> the module that defines it
_HOMES = {
    "API_MODULES": "server",
    "ApiError": "errors",
    "Emulator": "server",
    "EmulatorControl": "control",
    "Request": "routing",
    "Response": "routing",
    "Router": "routing",
    "RunningEmulator": "server",
    "Store": "store",
    "main_serve": "server",
    "serve": "server",
}

__all__ = [
    "API_MODULES",
    "ApiError",
    "Emulator",
    "EmulatorControl",
    "Request",
    "Response",
    "Router",
    "RunningEmulator",
    "Store",
    "main_serve",
    "serve",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
