"""IAM v1: service accounts and their IAM policies.

    POST   /v1/projects/{p}/serviceAccounts                     create {accountId, serviceAccount}
    GET    /v1/projects/{p}/serviceAccounts[?pageSize&pageToken] list
    GET    /v1/projects/{p|-}/serviceAccounts/{email|uniqueId}  get
    PATCH  /v1/projects/{p|-}/serviceAccounts/{sa}              patch {serviceAccount, updateMask}
    DELETE /v1/projects/{p|-}/serviceAccounts/{sa}              delete
    POST   /v1/projects/{p|-}/serviceAccounts/{sa}:getIamPolicy  (actAs is granted here)
    POST   /v1/projects/{p|-}/serviceAccounts/{sa}:setIamPolicy

Backend (no HTTP): :mod:`.accounts` (accounts, their propagation window, what deleting one
does to the bindings that named it). :mod:`.handlers` parses, calls it and renders.
"""

from .handlers import router

__all__ = ["router"]
