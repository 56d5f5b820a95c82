"""The discovery-document validator itself (tests/contract.py)."""

from __future__ import annotations

import pytest

from tests.contract import PREFIXES, check_exchange, check_transcript, find_method, resolve_api

OP_ENABLE = "POST"
ENABLE = "/v1/projects/p/services/run.googleapis.com:enable"


@pytest.mark.parametrize(
    ("method", "path", "api", "method_id"),
    [
        (
            "GET",
            "/v2/projects/p/locations/l/services/s",
            "run",
            "run.projects.locations.services.get",
        ),
        ("POST", "/v2/projects/p/locations/l/jobs/j:run", "run", "run.projects.locations.jobs.run"),
        (
            "GET",
            "/v2/projects/p/locations/l/operations/o",
            "run",
            "run.projects.locations.operations.get",
        ),
        (
            "POST",
            "/v1/projects/p/secrets/s:addVersion",
            "secretmanager",
            "secretmanager.projects.secrets.addVersion",
        ),
        (
            "GET",
            "/v1/projects/p/secrets/s/versions/latest:access",
            "secretmanager",
            "secretmanager.projects.secrets.versions.access",
        ),
        ("POST", "/v1/projects/p/instances", "sqladmin", "sql.instances.insert"),
        ("GET", "/v1/projects/p/operations/o", "sqladmin", "sql.operations.get"),
        ("GET", "/storage/v1/b/bk/o/a%2Fb", "storage", "storage.objects.get"),
        ("POST", "/upload/storage/v1/b/bk/o", "storage", "storage.objects.insert"),
        ("PUT", "/storage/v1/b/bk/iam", "storage", "storage.buckets.setIamPolicy"),
        ("POST", "/v1/projects/p/builds", "cloudbuild", "cloudbuild.projects.builds.create"),
        ("GET", "/v1/operations/build/p/abc", "cloudbuild", "cloudbuild.operations.get"),
        (
            "GET",
            "/v1/projects/p/locations/l/repositories/r/dockerImages/i@sha256:ab",
            "artifactregistry",
            "artifactregistry.projects.locations.repositories.dockerImages.get",
        ),
        ("POST", "/v1/projects/p/serviceAccounts", "iam", "iam.projects.serviceAccounts.create"),
        (
            "POST",
            "/v3/projects/p:getIamPolicy",
            "cloudresourcemanager",
            "cloudresourcemanager.projects.getIamPolicy",
        ),
        ("POST", ENABLE, "serviceusage", "serviceusage.services.enable"),
        ("GET", "/v1/operations/acat.p2-1-x", "serviceusage", "serviceusage.operations.get"),
    ],
)
def test_routes_resolve_to_discovery_methods(method, path, api, method_id):
    found_api = resolve_api(method, path)
    assert found_api is not None and found_api[0] == api
    m, _ = find_method(*found_api, method, path)
    assert m["id"] == method_id


def test_prefix_table_is_a_table():
    assert all(isinstance(p, str) and cands for p, cands in PREFIXES)


def test_accepts_a_valid_exchange():
    op = {
        "name": "operations/x",
        "done": True,
        "metadata": {"@type": "type.googleapis.com/google.api.serviceusage.v1.OperationMetadata"},
        "response": {"@type": "anything", "whatever": {"nested": [1, 2]}},
    }
    assert check_exchange("serviceusage", "v1", "POST", ENABLE, {}, op) == []
    assert check_exchange(None, None, "POST", ENABLE, None, op) == []


def test_unknown_fields_and_types_fail():
    bad = {"name": 5, "done": "yes", "colour": "red", "error": {"code": "x", "extra": 1}}
    problems = check_exchange(None, None, "POST", ENABLE, {"surprise": True}, bad)
    text = "\n".join(problems)
    assert "request surprise: unknown field" in text
    assert "response name: expected a string" in text
    assert "response done: expected a boolean" in text
    assert "response colour: unknown field" in text
    assert "response error.code: expected an integer" in text
    assert "response error.extra: unknown field" in text


def test_enums_int64_arrays_maps():
    path = "/v2/projects/p/locations/l/services/s"
    svc = {
        "ingress": "INGRESS_TRAFFIC_ALL",
        "generation": "3",
        "labels": {"a": "b"},
        "template": {"containers": [{"image": "x", "ports": [{"containerPort": 8080}]}]},
    }
    assert check_exchange("run", "v2", "GET", path, None, svc) == []
    assert check_exchange("run", "v2", "GET", path, None, {**svc, "ingress": 1}) == []
    assert check_exchange("run", "v2", "GET", path, None, {**svc, "generation": 3}) == []
    problems = check_exchange(
        "run",
        "v2",
        "GET",
        path,
        None,
        {
            "ingress": "EVERYONE",
            "generation": "three",
            "labels": {"a": 1},
            "template": {"containers": {"image": "x"}},
        },
    )
    assert len(problems) == 4, problems
    assert check_exchange("run", "v2", "GET", path, None, {"ingress": 99})


def test_error_shape():
    ok = {
        "error": {
            "code": 404,
            "message": "m",
            "status": "NOT_FOUND",
            "errors": [{"message": "m", "domain": "global", "reason": "notFound"}],
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "R",
                    "domain": "d",
                    "metadata": {},
                }
            ],
        }
    }
    assert check_exchange(None, None, "POST", ENABLE, None, ok, status=404) == []
    assert check_exchange(None, None, "POST", ENABLE, None, {"oops": 1}, status=500)
    assert check_exchange(
        None,
        None,
        "POST",
        ENABLE,
        None,
        {"error": {"code": 1, "message": "m", "why": 1}},
        status=500,
    )


def test_unmatched_paths_and_bodies_on_bodyless_methods():
    assert check_exchange(None, None, "GET", "/v9/nothing", None, None)
    problems = check_exchange(None, None, "GET", "/v3/projects/p", {"x": 1}, None)
    assert problems and "takes no request body" in problems[0]


def test_check_transcript_skips_media_and_dropped():
    entries = [
        {
            "seq": 1,
            "method": "GET",
            "path": "/storage/v1/b/bk/o/x",
            "query": {"alt": ["media"]},
            "body": None,
            "status": 200,
            "response": {"_bytes": 3},
        },
        {
            "seq": 2,
            "method": "POST",
            "path": ENABLE,
            "query": {},
            "body": None,
            "status": None,
            "response": None,
            "dropped": True,
        },
        {
            "seq": 3,
            "method": "GET",
            "path": "/v3/projects/p",
            "query": {},
            "body": None,
            "status": 200,
            "response": {"projectId": "p", "bogus": 1},
        },
    ]
    assert check_transcript(entries) == ["#3 GET /v3/projects/p response bogus: unknown field"]
