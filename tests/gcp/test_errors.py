"""deployer.gcp.errors.map_error on what the real client libraries raise against the emulator:
reason and status survive for both the legacy (discovery-era) and the GAPIC error formats."""

from __future__ import annotations

import json

import pytest
from googleapiclient.errors import HttpError

from deployer import errors
from deployer.emulator import serviceusage
from deployer.emulator.testing import discovery_client
from deployer.gcp import retry
from deployer.gcp.errors import map_error

P = "errors-proj"


def _sql_instance(emulator, sql) -> dict:
    serviceusage.set_enabled(emulator.emu, P, "sqladmin.googleapis.com")
    return (
        sql.instances()
        .insert(
            project=P,
            body={
                "name": "pg-1",
                "region": "europe-west1",
                "databaseVersion": "POSTGRES_15",
                "settings": {"tier": "db-f1-micro"},
            },
        )
        .execute()
    )


def test_sql_operation_in_progress_is_legacy_without_status(emulator):
    sql = discovery_client(emulator.url, "sqladmin", "v1")
    _sql_instance(emulator, sql)
    with pytest.raises(HttpError) as exc:
        sql.databases().insert(project=P, instance="pg-1", body={"name": "db"}).execute()
    body = json.loads(exc.value.content)
    message = body["error"]["message"]
    assert body == {
        "error": {
            "code": 409,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": "operationInProgress"}],
        }
    }
    mapped = map_error(exc.value)
    assert isinstance(mapped, errors.Conflict)
    assert (mapped.code, mapped.reason, mapped.status) == (409, "operationInProgress", "")
    assert retry._sql_busy(mapped)
    assert not retry._concurrent_policy_change(mapped)


def test_injected_409_defaults_to_already_exists_not_a_policy_conflict(emulator):
    sql = discovery_client(emulator.url, "sqladmin", "v1")
    serviceusage.set_enabled(emulator.emu, P, "sqladmin.googleapis.com")
    emulator.control.add_fault(method="GET", path="/instances$", code=409, times=1)
    with pytest.raises(HttpError) as exc:
        sql.instances().list(project=P).execute()
    mapped = map_error(exc.value)
    assert isinstance(mapped, errors.Conflict)
    assert (mapped.status, mapped.reason) == ("ALREADY_EXISTS", "")
    assert not retry._concurrent_policy_change(mapped)
    emulator.control.clear_faults()
    emulator.control.add_fault(
        method="GET", path="/instances$", code=409, status="ABORTED", reason="ABORTED"
    )
    with pytest.raises(HttpError) as exc:
        sql.instances().list(project=P).execute()
    mapped = map_error(exc.value)
    assert (mapped.status, mapped.reason) == ("ABORTED", "ABORTED")  # reason from ErrorInfo
    assert retry._concurrent_policy_change(mapped)


def test_gapic_conflict_keeps_status_and_error_info_reason(emulator):
    from google.api_core import exceptions as core
    from google.cloud import run_v2

    from deployer.emulator.testing import gapic_options

    serviceusage.set_enabled(emulator.emu, P, "run.googleapis.com")
    emulator.control.add_fault(
        method="GET", path="/services/", code=409, status="ABORTED", reason="concurrentChange"
    )
    client = run_v2.ServicesClient(**gapic_options(emulator.url))
    with pytest.raises(core.Conflict) as exc:
        client.get_service(name=f"projects/{P}/locations/europe-west1/services/web")
    mapped = map_error(exc.value)
    assert isinstance(mapped, errors.Conflict)
    assert (mapped.code, mapped.status, mapped.reason) == (409, "ABORTED", "concurrentChange")
    assert retry._concurrent_policy_change(mapped)


def test_a_refused_connection_was_never_sent_a_reset_or_timeout_is_unanswered():
    """What may be sent again depends on whether the request left: a refused connection did not
    (any write may be retried); a reset or a read timeout after sending got no answer (a write
    not safe to repeat may have been applied: never sent again)."""
    import requests

    with pytest.raises(requests.ConnectionError) as refused:
        requests.post("http://127.0.0.1:1/", timeout=5)
    mapped = map_error(refused.value)
    assert type(mapped) is errors.Transient
    assert retry._not_applied(mapped)
    for unanswered in (requests.ReadTimeout("read timed out"), ConnectionResetError(104, "reset")):
        mapped = map_error(unanswered)
        assert isinstance(mapped, errors.Unanswered)
        assert retry._transient(mapped)  # a read or an idempotent write is retried
        assert not retry._not_applied(mapped)
