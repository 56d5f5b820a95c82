"""End-to-end scenarios through the CLI against the emulator (real clients over HTTP).

Each test starts from an empty emulator (the fixture resets it) and drives `djdeploy` exactly as
a user would, with `--endpoint` pointing at the emulator and a fast time scale.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from deployer.cli import app
from deployer.emulator.testing import EmulatorHandle
from tests.contract import check_transcript

pytestmark = pytest.mark.slow  # end to end through the CLI, on real time: seconds per test

PROJECT = "acme-prod"
TENANT = "demo"
GOLDEN = Path(__file__).parent / "golden"
UPDATE_GOLDEN = "UPDATE_GOLDEN"  # set (to anything) to rewrite the golden files
READ_VERBS = ("GET",)
READ_ACTIONS = (":getIamPolicy", ":access")
LEASE_CREATE = f"POST /upload/storage/v1/b/{PROJECT}-djdeploy-sources/o"
LEASE_DELETE = f"DELETE /storage/v1/b/{PROJECT}-djdeploy-sources/o/djdeploy-leases%2F{TENANT}"


def config_env(config_file: Path | None = None) -> dict[str, str]:
    """The scenarios' project and tenant (and config file) as a user's environment gives them."""
    env = {"GOOGLE_CLOUD_PROJECT": PROJECT, "DJDEPLOY_TENANT": TENANT}
    if config_file is not None:
        env["DJDEPLOY_CONFIG"] = str(config_file)
    return env


def djdeploy(
    emulator: EmulatorHandle, *args: str, scale: str = "0.001", config: Path | None = None
) -> tuple[int, str]:
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["--endpoint", emulator.url, "--time-scale", scale, *args],
        env=config_env(config),
        catch_exceptions=False,
    )
    return result.exit_code, result.output


def up(emulator: EmulatorHandle, *args: str) -> tuple[int, str]:
    return djdeploy(emulator, "up", "--tenant", TENANT, *args)


def status_json(emulator: EmulatorHandle) -> dict[str, Any]:
    code, output = djdeploy(emulator, "status", "--tenant", TENANT, "--json")
    assert code == 0, output
    doc: dict[str, Any] = json.loads(output)
    return doc


def is_read(entry: dict[str, Any]) -> bool:
    return entry["method"] in READ_VERBS or entry["path"].endswith(READ_ACTIONS)


def writes(transcript: list[dict[str, Any]]) -> list[str]:
    return [f"{e['method']} {e['path']}" for e in transcript if not is_read(e)]


def writes_but_the_lease(transcript: list[dict[str, Any]]) -> list[str]:
    """The writes of a transcript other than to the tenant's lease (in the sources bucket):
    what a no-op `up` must leave empty."""
    sources = f"/b/{PROJECT}-djdeploy-sources/o"
    return [w for w in writes(transcript) if sources not in w]


def is_lease_renewal(entry: dict[str, Any]) -> bool:
    """A heartbeat rewriting the tenant's lease (ifGenerationMatch=<its generation>): how many
    a run makes depends on how long it takes, as polls do."""
    precondition = entry["query"].get("ifGenerationMatch", ["0"])
    return entry["path"].startswith("/upload/") and precondition != ["0"]


def test_up_from_empty_then_status_all_ok(emulator: EmulatorHandle) -> None:
    code, output = up(emulator)
    assert code == 0, output
    assert f"https://{TENANT}-django-" in output and ".europe-west1.run.app" in output
    assert "/admin/ as admin" in output  # and how to reveal the password, never the password
    assert (
        f"password: CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER={emulator.url}/ "
        "CLOUDSDK_AUTH_ACCESS_TOKEN=emulator gcloud secrets versions access latest "
        f"--secret={TENANT}-django-superuser-password --project={PROJECT}"
    ) in output
    doc = status_json(emulator)
    states = {s["step"]: s["state"] for s in doc["steps"]}
    assert set(states.values()) == {"ok"}, states
    assert len(states) == 23  # with the manage job's, the rotation's and the 5 retiring steps
    assert doc["url"].endswith(".europe-west1.run.app")
    assert doc["ready_revision"].startswith(f"{TENANT}-django-0000")
    assert doc["last_migrate_execution"].startswith(f"{TENANT}-django-migrate-")
    problems = check_transcript(emulator.control.transcript())
    assert problems == []


def test_second_up_makes_no_mutating_call_and_plan_is_empty(emulator: EmulatorHandle) -> None:
    assert up(emulator)[0] == 0
    emulator.control.clear_transcript()
    code, output = up(emulator)
    assert code == 0, output
    transcript = [e for e in emulator.control.transcript() if not is_lease_renewal(e)]
    assert writes(transcript) == [LEASE_CREATE, LEASE_DELETE]  # the tenant's lease, no more
    code, output = djdeploy(emulator, "plan", "--tenant", TENANT)
    assert code == 0, output
    assert "nothing to change" in output


def test_noop_up_and_plan_read_each_resource_once(emulator: EmulatorHandle) -> None:
    """The golden no-op transcript lists what is read; this says each is read once (steps
    share their first observations' reads: deployer/gcp/reads.py)."""
    assert up(emulator)[0] == 0
    for command in ("up", "plan"):
        emulator.control.clear_transcript()
        code, output = djdeploy(emulator, command, "--tenant", TENANT)
        assert code == 0, output
        transcript = [e for e in emulator.control.transcript() if not is_lease_renewal(e)]
        reads = Counter(f"{e['method']} {e['path']}" for e in transcript)
        assert [r for r, n in reads.items() if n > 1] == [], command
        lease = {r for r in reads if "djdeploy-leases" in r or r == LEASE_CREATE}
        assert len(reads) - len(lease) == 37, (command, sorted(reads))


def test_plan_on_empty_project_exits_2_and_changes_nothing(emulator: EmulatorHandle) -> None:
    code, output = djdeploy(emulator, "plan", "--tenant", TENANT, "--json")
    assert code == 2
    doc = json.loads(output)
    assert doc["changes_pending"] is True
    assert writes(emulator.control.transcript()) == []


def _drop_bucket_label(emulator: EmulatorHandle) -> None:
    from deployer.emulator.testing import storage_client

    bucket = storage_client(emulator.url, PROJECT).get_bucket(f"{PROJECT}-{TENANT}-django-media")
    labels = dict(bucket.labels)
    labels.pop("djdeploy-app")
    bucket.labels = labels
    bucket.patch()


def _change_scaling(emulator: EmulatorHandle) -> None:
    from google.cloud import run_v2

    from deployer.emulator.testing import gapic_options

    client = run_v2.ServicesClient(**gapic_options(emulator.url))
    name = f"projects/{PROJECT}/locations/europe-west1/services/{TENANT}-django"
    service = client.get_service(name=name)
    service.template.scaling.max_instance_count = 7
    client.update_service(service=service).result(timeout=30)


def _delete_service(emulator: EmulatorHandle) -> None:
    from google.cloud import run_v2

    from deployer.emulator.testing import gapic_options

    client = run_v2.ServicesClient(**gapic_options(emulator.url))
    name = f"projects/{PROJECT}/locations/europe-west1/services/{TENANT}-django"
    client.delete_service(name=name).result(timeout=30)


def _drop_project_binding(emulator: EmulatorHandle) -> None:
    client = emulator.discovery("cloudresourcemanager", "v3")
    policy = client.projects().getIamPolicy(resource=f"projects/{PROJECT}", body={}).execute()
    for binding in policy["bindings"]:
        if binding["role"] == "roles/cloudsql.client":
            binding["members"] = []
    client.projects().setIamPolicy(
        resource=f"projects/{PROJECT}", body={"policy": policy}
    ).execute()


@pytest.mark.parametrize(
    ("drift", "steps"),
    [
        (_drop_bucket_label, {"bucket"}),
        (_change_scaling, {"service"}),
        (_delete_service, {"service", "invoker"}),  # the public binding went with the service
        (_drop_project_binding, {"iam-runtime"}),
    ],
)
def test_drift_is_shown_by_plan_and_repaired_by_up(
    emulator: EmulatorHandle, drift: Any, steps: set[str]
) -> None:
    assert up(emulator)[0] == 0
    drift(emulator)
    code, output = djdeploy(emulator, "plan", "--tenant", TENANT, "--json")
    assert code == 2, output
    pending = {s["step"] for s in json.loads(output)["steps"] if s["action"] != "noop"}
    assert pending == steps
    code, output = up(emulator)
    assert code == 0, output
    code, output = djdeploy(emulator, "plan", "--tenant", TENANT)
    assert code == 0, output


# One fault per step's first mutating call: (path pattern, what the step is).
FAULT_PATHS = [
    ("services:batchEnable", "apis"),
    ("/serviceAccounts$", "service-accounts"),
    ("/secrets$", "secrets"),
    ("/instances$", "sql-instance"),
    ("/databases$", "sql-database"),
    ("/users$", "sql-user"),
    ("/storage/v1/b$", "bucket"),
    ("/repositories$", "registry"),
    (":setIamPolicy$", "iam"),
    ("/builds$", "image"),
    ("/jobs$", "jobs"),
    (":run$", "job executions"),
    ("/services$", "service"),
]


@pytest.mark.parametrize(("path", "what"), FAULT_PATHS, ids=[w for _, w in FAULT_PATHS])
def test_a_503_burst_and_a_429_are_ridden_out(
    emulator: EmulatorHandle, path: str, what: str
) -> None:
    emulator.control.add_fault(method="POST", path=path, code=503, times=2)
    emulator.control.add_fault(method="POST", path=path, code=429, retry_after=0.01, times=1)
    code, output = up(emulator)
    assert code == 0, output
    assert status_json(emulator)["steps"]


@pytest.mark.parametrize(
    ("kind", "match", "step", "times"),
    [
        ("build", "demo", "image", 1),
        ("execution", "demo-django-migrate", "migrate", 1),
        # a first up deploys one revision (its a.run.app host allowed by a pattern known up
        # front, so no second one adds it)
        ("revision", "demo-django", "service", 1),
    ],
)
def test_an_operation_that_fails_ends_in_a_clear_error_and_the_next_up_completes(
    emulator: EmulatorHandle, kind: str, match: str, step: str, times: int
) -> None:
    emulator.control.fail(kind, match, "it broke on purpose", times=times)
    code, output = up(emulator)
    assert code == 1
    assert f"failed {step}:" in output
    assert "Traceback" not in output
    code, output = up(emulator)
    assert code == 0, output


def test_destroy_keeps_data_then_delete_data_leaves_nothing(emulator: EmulatorHandle) -> None:
    assert up(emulator)[0] == 0
    for _ in range(2):
        code, output = djdeploy(emulator, "destroy", "--tenant", TENANT)
        assert code == 0, output
    kept = labelled_resources(emulator)
    assert set(kept) == {"sql.instance", "secretmanager.secret", "bucket"}, kept
    for _ in range(2):
        code, output = djdeploy(emulator, "destroy", "--tenant", TENANT, "--delete-data", "--yes")
        assert code == 0, output
    assert labelled_resources(emulator) == Counter()


def test_delete_data_deletes_the_database_before_its_user(emulator: EmulatorHandle) -> None:
    """PostgreSQL refuses to drop a role that owns tables or holds grants in a database (Cloud
    SQL's users.delete fails so): the database goes first, though sql-user is after it in up."""
    assert up(emulator)[0] == 0
    emulator.control.clear_transcript()
    code, output = djdeploy(emulator, "destroy", "--tenant", TENANT, "--delete-data", "--yes")
    assert code == 0, output
    deletes = [
        found.group(1)
        for e in emulator.control.transcript()
        if e["method"] == "DELETE"
        and (found := re.search(r"/instances/[^/]+/(databases|users)\b", e["path"]))
    ]
    assert deletes.index("databases") < deletes.index("users"), deletes
    # the sql-database step, after sql-user, finds it gone: not "already gone" (it was there)
    assert f"database {TENANT}_django already gone" not in output, output
    assert "(the sql-user step deletes it before its user, who owns it)" in output, output


def labelled_resources(emulator: EmulatorHandle) -> Counter[str]:
    """Every resource in the emulator's store that carries our tenant label (by kind)."""
    found: Counter[str] = Counter()
    for kind, items in emulator.emu.store.dump().items():
        for value in items.values():
            text = json.dumps(value)
            if f'"djdeploy-tenant": "{TENANT}"' in text and kind.split(".")[0] != "op":
                found[kind.split(".", 1)[-1] if kind.startswith("storage") else kind] += 1
    return found


def test_every_request_body_validates_against_the_discovery_documents(
    emulator: EmulatorHandle,
) -> None:
    assert up(emulator)[0] == 0
    assert up(emulator)[0] == 0
    assert djdeploy(emulator, "destroy", "--tenant", TENANT, "--delete-data", "--yes")[0] == 0
    assert check_transcript(emulator.control.transcript()) == []


def normalise(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A transcript as a stable document: writes counted by path template, reads as a set
    (polling counts depend on timing, so reads are not counted)."""

    def template(path: str) -> str:
        path = re.sub(r"/operations/[^/]+(/[^/]+)?$", "/operations/{id}", path)
        path = re.sub(r"/builds/[0-9a-f-]{8,}", "/builds/{id}", path)
        path = re.sub(r"/executions/[^/:]+", "/executions/{id}", path)
        path = re.sub(r"/revisions/[^/:]+", "/revisions/{id}", path)
        path = re.sub(r"src-[0-9a-f]+", "src-{digest}", path)
        path = re.sub(r"%2F", "/", path)
        return path

    # refused attempts (a new service account not visible yet, a fault) and lease renewals
    # depend on timing: only the writes that took effect are the traffic a change must not alter
    write_counts = Counter(
        f"{e['method']} {template(e['path'])}"
        for e in entries
        if not is_read(e) and e["status"] < 400 and not is_lease_renewal(e)
    )
    reads = sorted({f"{e['method']} {template(e['path'])}" for e in entries if is_read(e)})
    return {"writes": dict(sorted(write_counts.items())), "reads": reads}


@pytest.mark.parametrize("scenario", ["up-from-empty", "noop-up", "destroy"])
def test_golden_transcripts(emulator: EmulatorHandle, scenario: str) -> None:
    if scenario != "up-from-empty":
        assert up(emulator)[0] == 0
        emulator.control.clear_transcript()
    if scenario == "destroy":
        assert djdeploy(emulator, "destroy", "--tenant", TENANT)[0] == 0
    else:
        assert up(emulator)[0] == 0
    assert_golden(GOLDEN / f"{scenario}.json", normalise(emulator.control.transcript()))


def assert_golden(path: Path, got: dict[str, Any]) -> None:
    """``got`` equals the golden file; with UPDATE_GOLDEN=1 set, write it instead. A missing
    file fails: a golden file that writes itself would pass a run that never compared."""
    if os.environ.get(UPDATE_GOLDEN):
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(got, indent=2) + "\n")
        return
    if not path.exists():
        pytest.fail(f"golden file {path.name} is missing: run with {UPDATE_GOLDEN}=1 to write it")
    assert got == json.loads(path.read_text()), f"traffic changed: {UPDATE_GOLDEN}=1 to accept"


def test_a_missing_golden_file_fails_unless_updating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(UPDATE_GOLDEN, raising=False)
    path = tmp_path / "golden" / "new.json"
    with pytest.raises(pytest.fail.Exception, match=f"missing: run with {UPDATE_GOLDEN}=1"):
        assert_golden(path, {"writes": {}})
    assert not path.exists()
    monkeypatch.setenv(UPDATE_GOLDEN, "1")
    assert_golden(path, {"writes": {}})
    monkeypatch.delenv(UPDATE_GOLDEN)
    assert_golden(path, {"writes": {}})
    with pytest.raises(AssertionError, match="traffic changed"):
        assert_golden(path, {"writes": {"POST /x": 1}})


def start_up_until(
    emulator: EmulatorHandle,
    cwd: Path,
    seen: Callable[[dict[str, Any]], bool],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> subprocess.Popen[str]:
    """`djdeploy up` in a process of its own (``env`` added to the tenant's), returned while it
    runs, once the emulator's transcript holds a request ``seen`` accepts: the middle of a
    deployment, for the tests that stop it there (kill -9)."""
    env = {**os.environ, "GOOGLE_CLOUD_PROJECT": PROJECT, "DJDEPLOY_TENANT": TENANT, **(env or {})}
    cmd = [sys.executable, "-m", "deployer", "--endpoint", emulator.url, "--time-scale", "0.01"]
    proc = subprocess.Popen(
        [*cmd, "up", "--tenant", TENANT],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any(seen(e) for e in emulator.control.transcript()):
            return proc
        time.sleep(0.05)
    output = proc.communicate()[0] if proc.poll() is not None else ""
    proc.kill()
    raise AssertionError(f"up never made the request waited for: {output}")


def start_up_until_sql_create(emulator: EmulatorHandle, cwd: Path) -> subprocess.Popen[str]:
    """`djdeploy up` in a process of its own, returned once it has started the (slow) SQL
    instance create."""
    return start_up_until(
        emulator, cwd, lambda e: e["path"].endswith("/instances") and e["method"] == "POST"
    )


def test_kill_9_mid_up_then_up_finishes_without_duplicates(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    proc = start_up_until_sql_create(emulator, tmp_path)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    code, output = up(emulator)
    assert code == 0, output
    state = emulator.emu.store.dump()
    versions = state.get("secretmanager.version", {})
    assert len(versions) == 3, sorted(versions)  # one version per generated secret
    builds = state.get("cloudbuild.build", {})
    assert len(builds) == 1


def test_no_secret_value_in_any_output_even_with_google_debug_logging(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """Every command at -v, with Google's client logging on: no secret value in any output, nor
    in the emulator's transcript (tests/gcp/test_secret_logging.py shows the logging is live)."""
    import base64

    env = {
        **os.environ,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "DJDEPLOY_TENANT": TENANT,
        "GOOGLE_SDK_PYTHON_LOGGING_SCOPE": "google",
    }
    base = [
        sys.executable,
        "-m",
        "deployer",
        "--endpoint",
        emulator.url,
        "--time-scale",
        "0.001",
        "-v",
    ]
    outputs = []
    for args in (["up", "--json"], ["up"], ["status", "--json"], ["plan"]):
        proc = subprocess.run(
            [*base, *args], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120
        )
        outputs.append(proc.stdout + proc.stderr)
    text = "\n".join(outputs)
    versions = emulator.emu.store.list("secretmanager.version")
    assert len(versions) == 3
    for _, version in versions:
        value = base64.b64decode(version["_data"]).decode()
        for form in (value, base64.b64encode(value.encode()).decode()):
            assert form not in text
            assert form not in json.dumps(emulator.control.transcript())


def test_ctrl_c_mid_up_says_how_to_finish_and_up_finishes(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    proc = start_up_until_sql_create(emulator, tmp_path)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted: nothing is lost" in output
    assert "Traceback" not in output
    code, output = up(emulator)
    assert code == 0, output
