"""Cloud Build v1: builds, their long-running operations, and the images they push.

    POST /v1/projects/{p}/builds[?parent=projects/p/locations/l]        -> Operation
    POST /v1/projects/{p}/locations/{l}/builds                          -> Operation
    GET  /v1/projects/{p}/builds/{id}[?name=projects/p/locations/l/builds/id]
    GET  /v1/projects/{p}/locations/{l}/builds/{id}
    GET  /v1/projects/{p}/builds[?parent=&filter=&pageSize=&pageToken=]  (newest first)
    GET  /v1/projects/{p}/locations/{l}/builds[?filter=...]
    POST /v1/projects/{p}/builds/{id}:cancel      (and the regional .../builds/{id}:cancel)
    POST   /v1/projects/{p}/triggers[?parent=projects/p/locations/l]  create (name unique)
    GET    /v1/projects/{p}/triggers[?parent=&pageSize=&pageToken=]
    GET    /v1/projects/{p}/triggers/{id or name}[?name=projects/p/locations/l/triggers/t]
    PATCH  /v1/projects/{p}/triggers/{id or name}   replace (location: the body's resourceName)
    DELETE /v1/projects/{p}/triggers/{id or name}[?name=...]
    (each also as /v1/projects/{p}/locations/{l}/triggers[/{id or name}])
    GET  /v1/operations/build/{p}/{base64 id}     global build operation
    GET  /v1/projects/{p}/locations/{l}/operations/{id}   regional; Artifact Registry's too

Backend (no HTTP): :mod:`.builds` (state, checks, the operation that runs a build and pushes
its images through Artifact Registry's backend); :mod:`.triggers` (GitHub push triggers,
refused until ``connect_github`` stands for connecting the repository; they never fire).
:mod:`.handlers` parses, calls them and renders; it also serves the regional operations path
Artifact Registry shares.
"""

from .handlers import router
from .triggers import connect_github

__all__ = ["connect_github", "router"]
