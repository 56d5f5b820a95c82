"""The one retry policy. Every API call goes through `call()`; the client libraries' own
retries are turned off so there is exactly one layer.

RETRYABLE names what is retried: transient errors (429, 5xx, resets, timeouts) and Cloud SQL's
"one operation at a time" conflict. Retry-After is honoured. Sleeping goes through the injected
`sleep` (the Cloud's clock), so tests never wait for real.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import tenacity

from deployer import errors
from deployer.gcp.errors import map_error

T = TypeVar("T")


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, errors.Transient)


def _sql_busy(exc: BaseException) -> bool:
    return isinstance(exc, errors.Conflict) and exc.reason == "operationInProgress"


def _sql_stale_data(exc: BaseException) -> bool:
    """Cloud SQL 412 staleData: the settingsVersion sent is old; redo the read-modify-write."""
    return isinstance(exc, errors.Conflict) and exc.reason == "staleData"


def _concurrent_policy_change(exc: BaseException) -> bool:
    """IAM setIamPolicy 409 ABORTED, storage 412: redo the whole read-modify-write."""
    return (
        isinstance(exc, errors.Conflict)
        and exc.code in (409, 412)
        and (exc.status in ("ABORTED", "FAILED_PRECONDITION") or exc.code == 412)
    )


RETRYABLE: tuple[Callable[[BaseException], bool], ...] = (_transient, _sql_busy)
SQL_SETTINGS: tuple[Callable[[BaseException], bool], ...] = (*RETRYABLE, _sql_stale_data)
POLICY_CONFLICT: tuple[Callable[[BaseException], bool], ...] = (_concurrent_policy_change,)


def _wait(state: tenacity.RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, errors.CloudError) and exc.retry_after is not None:
        return min(exc.retry_after, 60.0)
    return min(0.5 * 2 ** (state.attempt_number - 1), 16.0)


def call(
    fn: Callable[[], T],
    *,
    sleep: Callable[[float], None],
    attempts: int = 8,
    retry_on: tuple[Callable[[BaseException], bool], ...] = RETRYABLE,
) -> T:
    """Run `fn`, mapping client errors to deployer.errors and retrying what `retry_on` names.

    A write may have been applied before a reset: callers make writes idempotent (create
    answers 409 -> read back), so a retried write is safe."""

    def mapped() -> T:
        try:
            return fn()
        except Exception as exc:
            new = map_error(exc)
            if new is exc:
                raise
            raise new from exc

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda e: any(p(e) for p in retry_on)),
        wait=_wait,
        stop=tenacity.stop_after_attempt(attempts),
        sleep=sleep,
        reraise=True,
    )
    return retrying(mapped)
