"""Memorystore for Redis v1: instances.

    POST   /v1/projects/{p}/locations/{l}/instances?instanceId=     -> Operation
    GET    /v1/projects/{p}/locations/{l}/instances[?pageSize=&pageToken=]
    GET    /v1/projects/{p}/locations/{l}/instances/{i}
    GET    /v1/projects/{p}/locations/{l}/instances/{i}/authString     -> {"authString"} or {}
    PATCH  /v1/projects/{p}/locations/{l}/instances/{i}?updateMask=  -> Operation
    DELETE /v1/projects/{p}/locations/{l}/instances/{i}              -> Operation
    GET    /v1/projects/{p}/locations/{l}/operations/{id}            (served by cloudbuild)

Backend (no HTTP): :mod:`.instances` ("redis.instance" and "redis.authString", keyed by the
instance name; the operations' completers; :func:`realize`, which starts the local
redis-servers again when an executing emulator starts on a stored state). :mod:`.handlers`
parses, calls it and renders.
"""

from .handlers import operation_json, router
from .instances import realize

__all__ = ["operation_json", "realize", "router"]
