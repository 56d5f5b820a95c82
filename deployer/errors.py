"""One exception tree: every error djdeploy raises on purpose derives from DeployError.

The CLI prints a DeployError as one line and exits non-zero; anything else is a bug and shows
its traceback.
"""

from __future__ import annotations


class DeployError(Exception):
    """Base of every expected failure. `str()` is the one line the user sees."""


class ConfigError(DeployError):
    """Bad input: raised before any API call is made."""


class CredentialsError(DeployError):
    """No usable Google credentials (none found, unreadable, expired or revoked): found before
    any API call; the message says how to log in."""


class Unreachable(DeployError):
    """Nothing answers where the API calls would go (an --endpoint with no emulator behind it,
    no network): found before any API call; the message says what to start or check."""


class CloudError(DeployError):
    """An API call failed in a way the retry policy does not ride out.

    `code` is the HTTP status, `status` Google's status string (e.g. "FAILED_PRECONDITION"),
    `reason` the ErrorInfo / errors[].reason when the API gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int = 0,
        status: str = "",
        reason: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


class NotFound(CloudError):
    """404. The gcp layer turns it into None for observe(); delete() treats it as success."""


class Conflict(CloudError):
    """409 (ALREADY_EXISTS, ABORTED, operationInProgress) and 412 (stale etag / staleData)."""


class PermissionDenied(CloudError):
    """403."""


class InvalidArgument(CloudError):
    """400."""


class Transient(CloudError):
    """429, 5xx, connection reset, timeout: retried by the one retry policy."""


class Unanswered(Transient):
    """The request was sent and no answer came: the connection dropped or was reset, the
    read timed out, or a gateway answered 502/504 for a backend that may still be working.
    A write may have been applied, or may still be; a read or an idempotent write is simply
    retried."""


class MaybeApplied(CloudError):
    """A write that is not safe to repeat (a create with a server-assigned id) failed in a way
    that leaves it unknown whether it was applied. It is never sent again in place: the step
    re-observes, and finds the write's effect or does it again (gcp/retry.py)."""


class OperationFailed(CloudError):
    """A long-running operation finished with an error (build failed, revision failed...)."""


class NotOurs(DeployError):
    """A resource exists under our name but without our labels: never adopted."""


class StepFailed(DeployError):
    """A step could not reach its desired state; names the step and the cause."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step


class Timeout(DeployError):
    """The engine waited longer than the step's deadline for its diff to become NOOP."""


def means_absent(exc: CloudError) -> bool:
    """404, or 403 SERVICE_DISABLED: nothing can exist behind an API not enabled yet."""
    return isinstance(exc, NotFound) or (
        isinstance(exc, PermissionDenied) and exc.reason == "SERVICE_DISABLED"
    )
