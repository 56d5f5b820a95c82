"""Service Usage v1: which APIs a project has enabled.

    GET  /v1/projects/{p}/services/{s}             -> Service
    GET  /v1/projects/{p}/services[?filter=state:ENABLED&pageSize=&pageToken=]
    GET  /v1/projects/{p}/services:batchGet?names=projects/p/services/s...
    POST /v1/projects/{p}/services/{s}:enable      -> Operation
    POST /v1/projects/{p}/services/{s}:disable     -> Operation
    POST /v1/projects/{p}/services:batchEnable     -> Operation   body {"serviceIds": [...]}
    GET  /v1/operations/{id}                       -> Operation

An API module in the shape every one has: a backend without HTTP (:mod:`.services`: the
state, the long-running operation started with ``emu.ops.start`` and finished by a
``@completer``) and handlers that parse, call it and render (:mod:`.handlers`). Names use the
project *number*; enabling an already-enabled service answers the done operation
``operations/noop.DONE_OPERATION``. What other APIs and tests call is handed on here.
"""

from .handlers import router
from .services import DEFAULT_ENABLED, KIND, is_enabled, require_enabled, set_enabled

__all__ = ["DEFAULT_ENABLED", "KIND", "is_enabled", "require_enabled", "router", "set_enabled"]
