"""Cloud SQL Admin v1: instances, databases, users, backup runs and their operations.

    POST   /v1/projects/{p}/instances                          body DatabaseInstance -> Operation
    GET    /v1/projects/{p}/instances[?filter=&maxResults=&pageToken=]
    GET    /v1/projects/{p}/instances/{i}
    PATCH  /v1/projects/{p}/instances/{i}                      body (partial) -> Operation
    DELETE /v1/projects/{p}/instances/{i}                      -> Operation
    POST   /v1/projects/{p}/instances/{i}/databases            body Database -> Operation
    GET    /v1/projects/{p}/instances/{i}/databases[/{d}]
    DELETE /v1/projects/{p}/instances/{i}/databases/{d}        -> Operation
    POST   /v1/projects/{p}/instances/{i}/users                body User -> Operation
    GET    /v1/projects/{p}/instances/{i}/users[/{name}]       (passwords never echoed)
    PUT    /v1/projects/{p}/instances/{i}/users?name=&host=    body User -> Operation
    DELETE /v1/projects/{p}/instances/{i}/users?name=&host=    -> Operation
    POST   /v1/projects/{p}/instances/{i}/backupRuns           body BackupRun -> Operation
    GET    /v1/projects/{p}/instances/{i}/backupRuns[/{id}]
    GET    /v1/projects/{p}/operations/{op}
    GET    /v1/projects/{p}/operations?instance=I              newest first

A discovery-era API: errors carry ``errors[].reason`` (legacy format). Operations are
``sql#operation`` with ``status`` PENDING -> RUNNING -> DONE and failures in
``error.errors[]``; the effect of an operation lands when it is DONE. ONE operation at a time
per instance: anything mutating the instance while one runs is 409 ``operationInProgress``.

Backends (state and behaviour, no HTTP): :mod:`.instances`, :mod:`.databases`, :mod:`.users`,
:mod:`.backups`, :mod:`.operations`; stored shapes in :mod:`.records`; errors in
:mod:`.errors`. :mod:`.handlers` parses, calls them and renders (:mod:`.render`).
:mod:`.realize`: local execution (a PostgreSQL instance is a real server); :func:`realize`
brings the servers back when an emulator starts.
"""

from .handlers import router
from .realize import realize

__all__ = ["realize", "router"]
