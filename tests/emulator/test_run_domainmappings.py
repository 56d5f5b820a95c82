"""Cloud Run Admin v1 domain mappings in the emulator, through the discovery client (run v1),
every exchange checked against the discovery document: the status Cloud Run fills in as it
works (DNS records, then the certificate), an unverified domain and a missing route."""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core.future.polling import DEFAULT_POLLING
from google.cloud import run_v2
from googleapiclient.errors import HttpError

from deployer.emulator import serviceusage
from deployer.emulator.run.domainmappings import CERTIFICATE, RECONCILE
from deployer.emulator.testing import discovery_client, gapic_options
from tests.contract import check_transcript

pytestmark = pytest.mark.virtual_clock

PROJECT = "dm-proj"
NS = f"namespaces/{PROJECT}"
POLL = DEFAULT_POLLING.with_delay(initial=0.005, maximum=0.05).with_timeout(20)


@pytest.fixture
def mappings(emulator: Any) -> Any:
    serviceusage.set_enabled(emulator.emu, PROJECT, "run.googleapis.com")
    yield discovery_client(emulator.url, "run", "v1").namespaces().domainmappings()
    assert check_transcript(emulator.emu.transcript.entries()) == []


def _mapping(domain: str, route: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "domains.cloudrun.com/v1",
        "kind": "DomainMapping",
        "metadata": {"name": domain, "namespace": PROJECT, "labels": {"managed-by": "djdeploy"}},
        "spec": {"routeName": route, "certificateMode": "AUTOMATIC"},
    }


def _conditions(m: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in m["status"]["conditions"]}


def _status(call: Any) -> int:
    with pytest.raises(HttpError) as info:
        call.execute()
    return int(info.value.status_code)


def _past(emulator: Any, kind: str) -> None:
    """Move the emulator's clock past a stage of Cloud Run's work."""
    emulator.clock.advance(emulator.emu.latency.duration(kind) * 1.01)


def _service(emulator: Any) -> None:
    client = run_v2.ServicesClient(**gapic_options(emulator.url))
    service = run_v2.Service(
        template=run_v2.RevisionTemplate(containers=[run_v2.Container(image="gcr.io/d/app:1")])
    )
    op = client.create_service(
        parent=f"projects/{PROJECT}/locations/europe-west1", service=service, service_id="web"
    )
    emulator.clock.advance(60)
    op.result(polling=POLL)


def test_mapping_lifecycle(mappings: Any, emulator: Any) -> None:
    _service(emulator)
    created = mappings.create(parent=NS, body=_mapping("www.example.com")).execute()
    assert created["metadata"]["labels"] == {"managed-by": "djdeploy"}
    assert set(_conditions(created).values()) == {"Unknown"}
    assert "resourceRecords" not in created["status"]
    assert _status(mappings.create(parent=NS, body=_mapping("www.example.com"))) == 409

    _past(emulator, RECONCILE)
    name = f"{NS}/domainmappings/www.example.com"
    got = mappings.get(name=name).execute()
    assert got["status"]["resourceRecords"] == [
        {"type": "CNAME", "name": "www", "rrdata": "ghs.googlehosted.com."}
    ]
    assert _conditions(got) == {
        "Ready": "Unknown",
        "CertificateProvisioned": "Unknown",
        "DomainRoutable": "True",
    }
    _past(emulator, CERTIFICATE)
    assert set(_conditions(mappings.get(name=name).execute()).values()) == {"True"}

    apex = mappings.create(parent=NS, body=_mapping("example.com")).execute()
    _past(emulator, RECONCILE)
    records = mappings.get(name=f"{NS}/domainmappings/example.com").execute()["status"]
    assert {r["type"] for r in records["resourceRecords"]} == {"A", "AAAA"}
    assert apex["metadata"]["name"] == "example.com"

    listed = mappings.list(parent=NS).execute()["items"]
    assert [m["metadata"]["name"] for m in listed] == ["example.com", "www.example.com"]
    assert mappings.delete(name=name).execute()["status"] == "Success"
    assert _status(mappings.get(name=name)) == 404
    assert _status(mappings.delete(name=name)) == 404


def test_unverified_domain_and_missing_route(mappings: Any, emulator: Any) -> None:
    mappings.create(parent=NS, body=_mapping("www.unverified.example")).execute()
    mappings.create(parent=NS, body=_mapping("app.example.org", route="nowhere")).execute()
    _past(emulator, RECONCILE)
    denied = mappings.get(name=f"{NS}/domainmappings/www.unverified.example").execute()
    ready = denied["status"]["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == (
        "Ready",
        "False",
        "PermissionDenied",
    )
    assert "Caller is not authorized to administer the domain" in ready["message"]
    missing = mappings.get(name=f"{NS}/domainmappings/app.example.org").execute()
    assert missing["status"]["conditions"][0]["reason"] == "RouteMissing"


def test_bad_requests(mappings: Any) -> None:
    assert _status(mappings.create(parent=NS, body=_mapping("not a host"))) == 400
    assert _status(mappings.create(parent=NS, body=_mapping("a.example.com", route=""))) == 400
