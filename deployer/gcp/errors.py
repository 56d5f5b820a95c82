"""Map every Google client exception to the one tree in deployer.errors.

GAPIC REST clients raise google.api_core exceptions keyed by HTTP code; discovery clients raise
googleapiclient HttpError; the transports raise their own connection errors. All three end here,
so the rest of djdeploy sees CloudError subclasses only. Nothing here imports a client library:
an exception's class is looked up only when its module is loaded (``_loaded``), so mapping a
discovery client's error never waits for the modules still importing (gcp/clients.py).
"""

from __future__ import annotations

import json
import sys
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


def _loaded(module: str, name: str) -> Any:
    """The class ``module.name`` if its module is loaded, else no class (``()``: isinstance
    says False): an exception of a class not yet made cannot exist, and importing its module
    here, in a step thread, would queue behind the import thread (gcp/clients.py)."""
    cls = getattr(sys.modules.get(module), name, None)
    return cls if isinstance(cls, type) else ()


def map_error(exc: BaseException) -> BaseException:
    """Return the deployer error for a client exception, or `exc` itself when it is not one
    (a bug stays a bug, with its traceback)."""
    if isinstance(exc, errors.DeployError):
        return exc
    core = "google.api_core.exceptions"
    call: Any = exc
    if isinstance(exc, _loaded(core, "GoogleAPICallError")) and isinstance(call.code, int):
        response = call.response
        payload: Any = {}
        headers = None
        if response is not None and hasattr(response, "json"):
            headers = getattr(response, "headers", None)
            try:
                payload = response.json()
            except ValueError:
                payload = {}
        if not payload:
            payload = {"error": {"message": call.message, "status": ""}}
        mapped = _from_payload(call.code, payload, call.message, _retry_after(headers))
        if not mapped.reason and call.reason:
            mapped.reason = call.reason
        return mapped
    if isinstance(exc, (_loaded(core, "RetryError"), _loaded(core, "ServerError"))):
        return errors.Transient(str(exc))

    if isinstance(exc, _loaded("googleapiclient.errors", "HttpError")):
        http: Any = exc
        try:
            payload = json.loads(http.content.decode("utf-8", "replace"))
        except ValueError:
            payload = {}
        return _from_payload(http.status_code, payload, str(http.reason), _retry_after(http.resp))

    if isinstance(exc, _loaded("google.auth.exceptions", "RefreshError")):
        from deployer.gcp.auth import refused  # a login that expired during the run

        return refused(exc)

    if _never_sent(exc):
        return errors.Transient(f"connection failed: {type(exc).__name__}: {exc}")
    if _unanswered(exc):
        return errors.Unanswered(f"no answer: {type(exc).__name__}: {exc}")
    return exc


def _never_sent(exc: BaseException) -> bool:
    """The connection failed before the request left: refused, a connect timeout, a name that
    does not resolve (a passing DNS fault). Safe to send again, whatever the request."""
    if isinstance(exc, (ConnectionRefusedError, _loaded("requests", "ConnectTimeout"))):
        return True
    if isinstance(exc, _loaded("requests", "ConnectionError")):
        reason = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
        return isinstance(reason, _loaded("urllib3.exceptions", "NewConnectionError"))
    # other httplib2 errors (a bad URL, too many redirects) are not going to pass
    return isinstance(exc, _loaded("httplib2", "ServerNotFoundError"))


def _unanswered(exc: BaseException) -> bool:
    """Sent, and no answer came: a reset, a dropped connection, a read timeout."""
    import http.client
    import socket

    return isinstance(
        exc,
        (
            ConnectionError,
            socket.timeout,
            TimeoutError,
            http.client.HTTPException,
            _loaded("requests", "ConnectionError"),
            _loaded("requests", "Timeout"),
        ),
    )
