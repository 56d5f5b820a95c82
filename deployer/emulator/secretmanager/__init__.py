"""Secret Manager v1: secrets, their versions, and IAM on secrets.

    POST   /v1/projects/{p}/secrets?secretId=ID                 body Secret -> Secret
    GET    /v1/projects/{p}/secrets/{s}                          -> Secret
    GET    /v1/projects/{p}/secrets[?filter=&pageSize=&pageToken=] -> ListSecretsResponse
    PATCH  /v1/projects/{p}/secrets/{s}?updateMask=labels,...   body Secret -> Secret
    DELETE /v1/projects/{p}/secrets/{s}[?etag=]                 -> Empty (versions go with it)
    POST   /v1/projects/{p}/secrets/{s}:addVersion              body {payload} -> SecretVersion
    GET    /v1/projects/{p}/secrets/{s}/versions[?filter=state:ENABLED] -> newest first
    GET    /v1/projects/{p}/secrets/{s}/versions/{v}            v = number or "latest"
    GET    /v1/projects/{p}/secrets/{s}/versions/{v}:access     -> {name, payload{data, dataCrc32c}}
    POST   /v1/projects/{p}/secrets/{s}/versions/{v}:disable|:enable|:destroy  body {etag?}
    GET    /v1/projects/{p}/secrets/{s}:getIamPolicy[?options.requestedPolicyVersion=3]
    POST   /v1/projects/{p}/secrets/{s}:setIamPolicy            body {policy, updateMask?}

Every call is synchronous (no operations). Built moto's way: ``handlers`` parses, calls a
backend (``secrets.Secrets``, ``versions.Versions``: no HTTP) and renders. Time-driven changes
(an expired secret deleted, a scheduled version destruction) land when the emulator's clock has
passed them, at the next request that reads the secret. docs/emulator.md lists the behaviour
copied from Google.

Other emulator modules use :func:`policy_key` and :func:`enabled_version` (Cloud Run checking
secret references) and the store kinds (the admin API's state dump redacts payloads).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .handlers import router
from .secrets import SECRET_KIND, VERSION_KIND, policy_key
from .versions import Versions

if TYPE_CHECKING:
    from ..context import Emulator


def enabled_version(emu: Emulator, project_id: str, secret: str, version: str) -> str | None:
    """The number a secret reference (a number or "latest") resolves to when the secret exists
    and that version is ENABLED, else None."""
    return Versions(emu).enabled_number(project_id, secret, version)


__all__ = ["SECRET_KIND", "VERSION_KIND", "enabled_version", "policy_key", "router"]
