"""The one retry policy. Every API call goes through `call()`; the client libraries' own
retries are turned off so there is exactly one layer.

RETRYABLE names what is retried: transient errors (429, 5xx, resets, timeouts) and Cloud SQL's
"one operation at a time" conflict. Retry-After is honoured. Sleeping goes through the injected
`sleep` (the Cloud's clock), so tests never wait for real.

A write that is not safe to repeat (`once=`: a create whose id the server assigns) is retried in
place only on what says it was not applied: 429, 503 and a connection that failed before the
request left (Google's advice for non-idempotent calls; docs/architecture.md "One retry layer"
has the table). Any other failure may have applied it: the call raises MaybeApplied, after
waiting out the request's server deadline when no answer came (the write can then no longer
land unseen), and the step re-observes before deciding anything again.
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


def _not_applied(exc: BaseException) -> bool:
    """A failure that says the request was not applied: a write that is not safe to repeat
    may be sent again."""
    return (
        isinstance(exc, errors.Transient)
        and not isinstance(exc, errors.Unanswered)
        and exc.code in (0, 429, 503)  # 0: the connection failed before the request left
    )


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
    once: float | None = None,
) -> T:
    """Run `fn`, mapping client errors to deployer.errors and retrying what `retry_on` names.

    A write may have been applied before a reset: most writes are idempotent (a create with
    our chosen id answers 409 and the step adopts; a policy write carries its etag), so
    retrying them is safe. `once` marks a write that is not (its value: the server deadline
    it was sent with, in seconds): see the module's docstring."""
    if once is not None:
        return _once(fn, sleep=sleep, attempts=attempts, deadline=once)

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


def _once(
    fn: Callable[[], T], *, sleep: Callable[[float], None], attempts: int, deadline: float
) -> T:
    """`fn`, a write not safe to repeat: retried only on failures that say it was not applied.
    Unanswered, it may still be on its way: wait one more server deadline (it is applied by
    then or never), so the step's next observe sees it if it was."""
    try:
        # Cloud SQL's operationInProgress refuses the request: not applied either
        return call(fn, sleep=sleep, attempts=attempts, retry_on=(_not_applied, _sql_busy))
    except errors.Transient as exc:
        if _not_applied(exc):
            raise  # retried `attempts` times, never applied
        if isinstance(exc, errors.Unanswered):
            sleep(deadline)
        raise errors.MaybeApplied(
            f"the write may have been applied ({exc}): re-observing before sending it again",
            code=exc.code,
            status=exc.status,
            reason=exc.reason,
        ) from exc
