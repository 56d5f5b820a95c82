"""Cloud Storage's errors as types: the legacy JSON error (``errors[]`` with a reason), one class
per kind of failure, so the backend says what failed and the handlers never word HTTP."""

from __future__ import annotations

from ..errors import ApiError


class StorageError(ApiError):
    """A Cloud Storage error: ``http_code`` and ``reason`` are the kind's, the message the
    instance's."""

    http_code = 400
    reason_name = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(self.http_code, message, legacy=True, legacy_reason=self.reason_name)


class Invalid(StorageError):
    pass


class Required(StorageError):
    reason_name = "required"


class NotFound(StorageError):
    http_code = 404
    reason_name = "notFound"


class Conflict(StorageError):
    http_code = 409
    reason_name = "conflict"


class PreconditionFailed(StorageError):
    http_code = 412
    reason_name = "conditionNotMet"

    def __init__(
        self, message: str = "At least one of the pre-conditions you specified did not hold."
    ) -> None:
        super().__init__(message)


class RangeNotSatisfiable(StorageError):
    http_code = 416
    reason_name = "requestedRangeNotSatisfiable"

    def __init__(self) -> None:
        super().__init__("The requested range cannot be satisfied.")


class NotModified(Exception):
    """A read whose not-match condition failed: answered 304 with no body (not an error body:
    a 304 carries none)."""
