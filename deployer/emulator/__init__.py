"""djdeploy's local, stateful fake of the Google Cloud APIs it calls (docs/emulator.md).

from deployer.emulator import Emulator, serve
running = serve(Emulator(time_scale=0.001))
... clients with api_endpoint=running.url ...
running.control.add_fault(method="POST", path=":enable$", code=503, times=1)
running.stop()
"""

from __future__ import annotations

from .control import EmulatorControl
from .errors import ApiError
from .routing import Request, Response, Router
from .server import API_MODULES, Emulator, RunningEmulator, main_serve, serve
from .store import Store

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
