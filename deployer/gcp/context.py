"""What an API wrapper (gcp/<api>.py) needs of the Cloud it hangs off, and nothing more.

The wrappers depend on this protocol, not on gcp/cloud.py, so the import graph runs one way:
cloud.py composes the wrappers, the wrappers use a Context, and Cloud is one.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Protocol, TypeVar

from deployer.gcp.clients import ClientFactory

T = TypeVar("T")


class Context(Protocol):
    """One project, one region, one client factory, and the one retry policy."""

    project: str
    region: str
    clients: ClientFactory

    def call(self, fn: Callable[[], T], *, key: Hashable | None = None, **kwargs: Any) -> T:
        """One API call through the one retry policy (see gcp/retry.py); with ``key``, a read
        shared within the command (gcp/reads.py), without, a write."""
        ...

    def read(self, fn: Callable[[], T], *, key: Hashable | None = None) -> T | None:
        """A call where absent (404, or 403 SERVICE_DISABLED) answers None; ``key`` as in
        call()."""
        ...


def execute(request: Any) -> Callable[[], dict[str, Any]]:
    """A discovery (google-api-python-client) request as a thunk for Cloud.call / Cloud.read,
    with the library's own retries off: one retry layer."""

    def run() -> dict[str, Any]:
        result: dict[str, Any] = request.execute(num_retries=0)
        return result

    return run
