"""Map every Google client exception to the one tree in deployer.errors.

GAPIC REST clients raise google.api_core exceptions keyed by HTTP code; discovery clients raise
googleapiclient HttpError; the transports raise their own connection errors. All three end here,
so the rest of djdeploy sees CloudError subclasses only.
"""

from __future__ import annotations

import json
from typing import Any

from deployer import errors

_BY_CODE: dict[int, type[errors.CloudError]] = {
    400: errors.InvalidArgument,
    403: errors.PermissionDenied,
    404: errors.NotFound,
    409: errors.Conflict,
    412: errors.Conflict,
    429: errors.Transient,
    500: errors.Transient,
    502: errors.Unanswered,  # a gateway answered: the backend may still apply the request
    503: errors.Transient,
    504: errors.Unanswered,  # DEADLINE_EXCEEDED: the work may still complete
}


def _from_payload(
    code: int, payload: Any, fallback: str, retry_after: float | None
) -> errors.CloudError:
    err = payload.get("error", {}) if isinstance(payload, dict) else {}
    if not isinstance(err, dict):
        err = {"message": str(err)}
    reason = ""
    for detail in err.get("details") or []:
        if isinstance(detail, dict) and detail.get("@type", "").endswith("google.rpc.ErrorInfo"):
            reason = detail.get("reason", "")
    if not reason and err.get("errors"):
        reason = (err["errors"][0] or {}).get("reason", "")
    message = err.get("message") or fallback
    cls = _BY_CODE.get(code, errors.Transient if code >= 500 else errors.CloudError)
    return cls(
        f"{message} (HTTP {code}{', ' + reason if reason else ''})",
        code=code,
        status=err.get("status", ""),
        reason=reason,
        retry_after=retry_after,
    )


def _retry_after(headers: Any) -> float | None:
    value = None
    if headers is not None:
        value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def map_error(exc: BaseException) -> BaseException:
    """Return the deployer error for a client exception, or `exc` itself when it is not one
    (a bug stays a bug, with its traceback)."""
    if isinstance(exc, errors.DeployError):
        return exc
    from google.api_core import exceptions as core

    if isinstance(exc, core.GoogleAPICallError) and isinstance(exc.code, int):
        response = exc.response
        payload: Any = {}
        headers = None
        if response is not None and hasattr(response, "json"):
            headers = getattr(response, "headers", None)
            try:
                payload = response.json()
            except ValueError:
                payload = {}
        if not payload:
            payload = {"error": {"message": exc.message, "status": ""}}
        mapped = _from_payload(exc.code, payload, exc.message, _retry_after(headers))
        if not mapped.reason and exc.reason:
            mapped.reason = exc.reason
        return mapped
    if isinstance(exc, core.RetryError | core.ServerError):
        return errors.Transient(str(exc))

    from googleapiclient.errors import HttpError

    if isinstance(exc, HttpError):
        try:
            payload = json.loads(exc.content.decode("utf-8", "replace"))
        except ValueError:
            payload = {}
        return _from_payload(exc.status_code, payload, str(exc.reason), _retry_after(exc.resp))

    from google.auth.exceptions import RefreshError

    if isinstance(exc, RefreshError):  # a login that expired during the run
        from deployer.gcp.auth import refused

        return refused(exc)

    if _never_sent(exc):
        return errors.Transient(f"connection failed: {type(exc).__name__}: {exc}")
    if _unanswered(exc):
        return errors.Unanswered(f"no answer: {type(exc).__name__}: {exc}")
    return exc


def _never_sent(exc: BaseException) -> bool:
    """The connection failed before the request left: refused, a connect timeout, a name that
    does not resolve (a passing DNS fault). Safe to send again, whatever the request."""
    import requests
    import urllib3.exceptions

    if isinstance(exc, ConnectionRefusedError | requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        reason = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    import httplib2

    # other httplib2 errors (a bad URL, too many redirects) are not going to pass
    return isinstance(exc, httplib2.ServerNotFoundError)


def _unanswered(exc: BaseException) -> bool:
    """Sent, and no answer came: a reset, a dropped connection, a read timeout."""
    import http.client
    import socket

    import requests

    return isinstance(
        exc,
        ConnectionError
        | socket.timeout
        | TimeoutError
        | http.client.HTTPException
        | requests.ConnectionError
        | requests.Timeout,
    )
