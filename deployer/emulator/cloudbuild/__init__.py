"""Cloud Build v1: builds, their long-running operations, and the images they push.

    POST /v1/projects/{p}/builds[?parent=projects/p/locations/l]        -> Operation
    POST /v1/projects/{p}/locations/{l}/builds                          -> Operation
    GET  /v1/projects/{p}/builds/{id}[?name=projects/p/locations/l/builds/id]
    GET  /v1/projects/{p}/locations/{l}/builds/{id}
    GET  /v1/projects/{p}/builds[?parent=&filter=&pageSize=&pageToken=]  (newest first)
    GET  /v1/projects/{p}/locations/{l}/builds[?filter=...]
    POST /v1/projects/{p}/builds/{id}:cancel      (and the regional .../builds/{id}:cancel)
    GET  /v1/operations/build/{p}/{base64 id}     global build operation
    GET  /v1/projects/{p}/locations/{l}/operations/{id}   regional; Artifact Registry's too

Backend (no HTTP): :mod:`.builds` (state, checks, the operation that runs a build and pushes
its images through Artifact Registry's backend). :mod:`.handlers` parses, calls it and renders;
it also serves the regional operations path Artifact Registry shares.
"""

from .handlers import router

__all__ = ["router"]
