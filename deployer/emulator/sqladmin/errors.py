"""Cloud SQL Admin's own errors: the legacy ``errors[]`` with a ``reason`` and, as the API
answers (only the front end's errors, e.g. SERVICE_DISABLED, carry one), no ``status``."""

from __future__ import annotations

from ..errors import ApiError

IN_PROGRESS = "Operation failed because another operation was already in progress."
ALREADY_EXISTS = "The Cloud SQL instance already exists."
RECENTLY_DELETED = (
    "The Cloud SQL instance already exists. When you delete an instance, you can't reuse the "
    "name of the deleted instance until one week from the deletion date."
)
NOT_FOUND = "The Cloud SQL instance does not exist."
PROTECTED = (
    "The instance is protected. Please disable the deletion protection and try again. To "
    "disable deletion protection, update the instance settings with deletionProtectionEnabled "
    "set to false."
)
INVALID_STATE = "The instance or operation is not in an appropriate state to handle the request."


class SqlError(ApiError):
    """An error in Cloud SQL Admin's shape; ``reason`` is its ``errors[].reason``."""

    def __init__(self, code: int, message: str, reason: str) -> None:
        super().__init__(code, message, legacy=True, legacy_reason=reason, with_status=False)


def invalid(message: str) -> SqlError:
    """400 ``invalid``: Cloud SQL words it "Invalid request: ..."."""
    return SqlError(400, f"Invalid request: {message}", "invalid")


def not_found(what: str, reason: str = "notFound") -> SqlError:
    """404 for a database, user or backup run: "Not Found: <what> does not exist."."""
    return SqlError(404, f"Not Found: {what} does not exist.", reason)
