"""gcp/deletes.py: a read of a resource whose delete this command started answers it while
the delete runs, and raises OperationFailed with Google's reason once it ended in error; a
resource gone, or never deleted, costs no read of an operation."""

from __future__ import annotations

from typing import Any

import pytest

from deployer.errors import OperationFailed
from deployer.gcp.deletes import Deletes

NAME = "projects/p/locations/r/services/web"


def test_a_failed_delete_is_reported_by_the_next_read() -> None:
    reads: list[str] = []
    op: dict[str, Any] = {"done": False, "error": None}

    def read_op() -> dict[str, Any]:
        reads.append("op")
        return op

    deletes = Deletes("Cloud Run")
    found = {"name": NAME}
    assert deletes.check(NAME, found, kind="service") is found and reads == []  # none started
    deletes.started(NAME, read_op)
    assert deletes.check(NAME, None, kind="service") is None and reads == []  # gone: done
    assert deletes.check(NAME, found, kind="service") is found  # still running
    op.update(done=True, error={"message": "in use by a domain mapping"})
    with pytest.raises(OperationFailed) as failed:
        deletes.check(NAME, found, kind="service")
    assert str(failed.value) == (
        "Cloud Run did not delete service web: in use by a domain mapping; fix the cause and "
        "run the command again"
    )
    assert reads == ["op", "op"]
