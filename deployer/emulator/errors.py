"""Google's JSON error format.

Every error the emulator answers goes through :class:`ApiError`, so that every client library
maps it the way it maps the real thing: GAPIC REST by HTTP code (and ``ErrorInfo`` for
reason/domain), discovery clients to ``HttpError`` with the same body.
"""

from __future__ import annotations

from typing import Any

#: canonical google.rpc.Code names per HTTP status, as Google's front end maps them
STATUS_BY_CODE: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    413: "OUT_OF_RANGE",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

#: the "reason" discovery-era APIs put in ``errors[]`` when nothing more specific applies
LEGACY_REASON_BY_CODE: dict[int, str] = {
    400: "badRequest",
    401: "required",
    403: "forbidden",
    404: "notFound",
    409: "conflict",
    412: "conditionNotMet",
    429: "rateLimitExceeded",
    500: "backendError",
    501: "notImplemented",
    503: "backendError",
}


class ApiError(Exception):
    """An error answered in Google's JSON format.

    ``status`` defaults from the code; ``reason`` adds a ``google.rpc.ErrorInfo`` detail (what
    GAPIC clients read into ``exc.reason``); ``legacy`` adds the ``errors: [...]`` list that
    discovery-era APIs (sqladmin, storage) send; ``retry_after`` adds a Retry-After header;
    ``with_status=False`` leaves ``status`` out of the body, as Cloud SQL Admin's own errors do
    (``{"error": {"code", "message", "errors": [{"message", "domain", "reason"}]}}``).
    """

    def __init__(
        self,
        code: int,
        message: str,
        *,
        status: str | None = None,
        reason: str | None = None,
        domain: str = "googleapis.com",
        legacy: bool = False,
        retry_after: float | None = None,
        metadata: dict[str, str] | None = None,
        legacy_reason: str | None = None,
        with_status: bool = True,
    ) -> None:
        super().__init__(f"{code} {message}")
        self.code = int(code)
        self.message = message
        self.status = status or STATUS_BY_CODE.get(self.code, "UNKNOWN")
        self.reason = reason
        self.domain = domain
        self.legacy = legacy
        self.retry_after = retry_after
        self.metadata = dict(metadata or {})
        self.legacy_reason = legacy_reason
        self.with_status = with_status

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.legacy:
            err["errors"] = [
                {
                    "message": self.message,
                    "domain": "global",
                    "reason": self.legacy_reason
                    or self.reason
                    or LEGACY_REASON_BY_CODE.get(self.code, "unknown"),
                }
            ]
        if self.with_status:
            err["status"] = self.status
        if self.reason:
            err["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": self.reason,
                    "domain": self.domain,
                    "metadata": dict(self.metadata),
                }
            ]
        return {"error": err}

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(0, round(self.retry_after)))}

    def op_error(self) -> dict[str, Any]:
        """The ``google.rpc.Status`` shape an operation's ``error`` field carries."""
        return {"code": self.code, "message": self.message, "status": self.status}


#: google.rpc.Code numbers, for APIs whose operation ``error.code`` is the gRPC code
GRPC_CODE_BY_STATUS: dict[str, int] = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}


class InvalidArgument(ApiError):
    """400: the request is malformed or names something invalid."""

    def __init__(self, message: str, **kw: Any) -> None:
        super().__init__(400, message, **kw)


class FailedPrecondition(ApiError):
    """400 FAILED_PRECONDITION: the resource is not in a state that allows the call."""

    def __init__(self, message: str, **kw: Any) -> None:
        super().__init__(400, message, status="FAILED_PRECONDITION", **kw)


class PermissionDenied(ApiError):
    """403: the caller may not do this (or the API is disabled)."""

    def __init__(self, message: str, **kw: Any) -> None:
        super().__init__(403, message, **kw)


class NotFound(ApiError):
    """404: the resource does not exist (or is not visible yet)."""

    def __init__(self, message: str, **kw: Any) -> None:
        super().__init__(404, message, **kw)


class AlreadyExists(ApiError):
    """409: the resource exists already, or the state forbids the change now."""

    def __init__(self, message: str, **kw: Any) -> None:
        super().__init__(409, message, **kw)


class Unimplemented(ApiError):
    """501: the method or location is not served."""

    def __init__(self, message: str, **kw: Any) -> None:
        super().__init__(501, message, **kw)
