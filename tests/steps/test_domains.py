"""The domains step's diff, from mappings in the v1 shape: each state Cloud Run reports and
what the step answers (create, wait, noop with the DNS records, a typed failure, unmap); a
region without domain mappings answers without a call."""

from __future__ import annotations

import dataclasses
from typing import Any

from deployer.steps.base import Action, Broken, NotOurs
from deployer.steps.domains import DomainMappings, Unverified
from tests.steps.test_service import config

CFG = config(domains=("www.example.com",))
STEP = DomainMappings(CFG)
SERVICE = CFG.names.service


def mapping(domain: str = "www.example.com", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": domain, "labels": dict(CFG.names.labels)},
        "spec": {"routeName": SERVICE},
        "status": status,
    }


def cond(kind: str, state: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": kind, "status": state, "reason": reason, "message": message}


RECORDS = [{"type": "CNAME", "name": "www", "rrdata": "ghs.googlehosted.com."}]


def test_missing_mapping_is_created() -> None:
    change = STEP.diff(None)
    assert change.action is Action.CREATE
    assert [(f.path, f.old, f.new) for f in change.fields] == [
        ("www.example.com.routeName", None, SERVICE)
    ]


def test_waits_for_the_records_then_shows_them_and_the_certificate() -> None:
    pending = mapping(conditions=[cond("Ready", "Unknown")])
    assert STEP.diff({"www.example.com": pending}).action is Action.WAIT
    published = mapping(
        resourceRecords=RECORDS,
        conditions=[
            cond("Ready", "Unknown", "CertificatePending", "Waiting for certificate"),
            cond("CertificateProvisioned", "Unknown", "CertificatePending", "Waiting for cert"),
            cond("DomainRoutable", "True"),
        ],
    )
    change = STEP.diff({"www.example.com": published})
    assert change.action is Action.NOOP
    assert change.info["dns www.example.com"] == "CNAME www ghs.googlehosted.com."
    assert change.info["certificate www.example.com"] == (
        "pending (Ready Unknown, CertificateProvisioned Unknown, DomainRoutable True): "
        "Waiting for cert"
    )
    ready = mapping(resourceRecords=RECORDS, conditions=[cond("Ready", "True")])
    change = STEP.diff({"www.example.com": ready})
    assert change.info["certificate www.example.com"].startswith("ready")
    assert change.reason.endswith("certificates ready")


def test_an_unverified_domain_is_a_typed_failure_with_the_fix() -> None:
    denied = mapping(conditions=[cond("Ready", "False", "PermissionDenied", "Caller is not...")])
    change = STEP.diff({"www.example.com": denied})
    assert change.action is Action.UPDATE  # mapped again once per run: verified since?
    assert isinstance(change.failure, Unverified)
    assert "Google Search Console" in str(change.failure)
    other = mapping(conditions=[cond("Ready", "False", "RouteMissing", "no route")])
    failure = STEP.diff({"www.example.com": other}).failure
    assert type(failure) is Broken and "no route" in str(failure)


def test_an_unverified_domain_is_known_by_googles_words_whatever_the_reason() -> None:
    words = (
        "com.google.net.rpc3.RpcException: Caller is not authorized to administer the domain "
        "www.example.com. If you own www.example.com, you can obtain authorization by verifying "
        "ownership of the domain, or any of its parent domains, via the Webmaster Central portal"
    )
    denied = mapping(conditions=[cond("Ready", "False", "Unknown", words)])
    assert isinstance(STEP.diff({"www.example.com": denied}).failure, Unverified)


def test_a_mapping_of_someone_else_is_refused() -> None:
    theirs = {**mapping(), "metadata": {"name": "www.example.com"}}
    change = STEP.diff({"www.example.com": theirs})
    assert change.action is Action.REFUSE and isinstance(change.failure, NotOurs)


def test_a_domain_no_longer_configured_is_unmapped() -> None:
    ok = mapping(resourceRecords=RECORDS, conditions=[cond("Ready", "True")])
    change = STEP.diff({"www.example.com": ok, "old.example.com": mapping("old.example.com")})
    assert change.action is Action.UPDATE
    assert [(f.path, f.new) for f in change.fields] == [("old.example.com.routeName", None)]


def test_a_region_without_domain_mappings_says_which_route_to_take() -> None:
    step = DomainMappings(dataclasses.replace(CFG, region="europe-west2"))
    assert step.observe(None) is None  # type: ignore[arg-type]  # no call
    change = step.diff(None)
    assert change.action is Action.NOOP
    assert "europe-west2 offers no Cloud Run domain mappings" in change.reason
    assert "global external Application Load Balancer with a serverless NEG" in change.reason
