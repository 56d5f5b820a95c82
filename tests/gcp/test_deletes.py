"""gcp/deletes.py: the deletes a step started inside the engine's recording, checked while the
step is not done: nothing while each runs or once it succeeded, OperationFailed naming the
resource and Google's reason once one ended in error; a delete outside a recording is kept by
none."""

from __future__ import annotations

import pytest

from deployer.errors import OperationFailed
from deployer.gcp import deletes


def test_a_failed_delete_is_reported_by_the_next_check() -> None:
    reads: list[str] = []
    errors: dict[str, str | None] = {"web": None, "worker": None}

    def reason(name: str) -> deletes.ReadReason:
        def read() -> str | None:
            reads.append(name)
            return errors[name]

        return read

    deletes.started("Cloud Run", "service lost", reason("lost"))  # no recording: kept by none
    with deletes.recording() as started:
        started.check(again="up")  # none started
        deletes.started("Cloud Run", "service web", reason("web"))
        deletes.started("Cloud Run", "worker pool worker", reason("worker"))
        started.check(again="up")  # both still running
        assert reads == ["web", "worker"]
        errors["worker"] = "in use by a domain mapping"
        with pytest.raises(OperationFailed) as failed:
            started.check(again="destroy")
    assert str(failed.value) == (
        "Cloud Run did not delete worker pool worker: in use by a domain mapping; fix the "
        "cause and run destroy again"
    )
    assert reads == ["web", "worker", "web", "worker"]


def test_each_recording_keeps_its_own_deletes() -> None:
    """Steps run in threads of their own, each in its own recording: one step's failed
    delete is never another's."""
    with deletes.recording() as outer:
        with deletes.recording() as inner:
            deletes.started("Cloud SQL", "user app on instance db", lambda: "refused")
        outer.check(again="up")
        with pytest.raises(OperationFailed, match="Cloud SQL did not delete user app"):
            inner.check(again="up")
