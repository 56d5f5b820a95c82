"""The fault matrix: every API family djdeploy calls x every kind of fault, through the CLI.

Each cell injects one fault (emulator fault rules or outcomes, docs/emulator.md) into a fresh
`djdeploy up` and expects one of two outcomes: the fault is **ridden out** (up exits 0), or up
ends in **one clear line** naming the failed step (exit 1, no traceback) and the next `up`
converges. Either way `plan` then has nothing to do, nothing was made twice (one build, one
execution per job, three secret versions), no secret value changed, and the fault fired. A cell
whose fault cannot happen to that family is **not applicable**, with the reason (a skip, so the
matrix reads whole in the test ids). docs/fault-matrix.md lists the matrix.
"""

from __future__ import annotations

import enum
import hashlib
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deployer.emulator.control import EmulatorControl
from deployer.emulator.testing import EmulatorHandle, gapic_options
from tests.test_scenarios import PROJECT, TENANT, djdeploy

#: the request timeout (djdeploy --request-timeout; 60 s by default) while a slow-response or
#: dropped-connection cell runs: short enough not to wait minutes (a write not safe to repeat
#: waits one more timeout after a lost answer), long enough that no other request outlasts it
#: under load. The slow response itself is held until the client has sent the request again, or
#: until the deadline the request names (Requests.hold, the emulator's delay fault), at most:
REQUEST_TIMEOUT = "5"
SLOW_RESPONSE = 60.0
#: the engine's time scale (--time-scale; the emulator runs at 0.001): the engine lets a pending
#: difference settle 3 s before it applies the same action again (0.3 s at 0.001), so a poll the
#: load delays (several suites on two cores) does not make it build or run a job twice
ENGINE_SCALE = "0.01"
SECRETS = ("db-password", "secret-key", "superuser-password")
RUN_SA = f"{TENANT}-django-run@{PROJECT}.iam.gserviceaccount.com"


class Outcome(enum.StrEnum):
    RIDDEN_OUT = "ridden out"
    CLEAR_LINE = "one clear line, then the next up converges"
    NOT_APPLICABLE = "not applicable"


class Kind(enum.StrEnum):
    BURST_503 = "503-burst"
    RETRY_AFTER_429 = "429-retry-after"
    ERROR_500 = "500"
    DROPPED = "dropped-connection"
    IN_PROGRESS_409 = "409-in-progress"
    GRANT_PROPAGATING_403 = "403-grant-propagating"
    OPERATION_ERROR = "operation-error"
    SLOW_RESPONSE = "slow-response"


Inject = Callable[[EmulatorControl], None]


@dataclass(frozen=True)
class Call:
    """The request of a family that a generic fault hits: its method and a path regex."""

    method: str
    path: str

    def rule(self, **fault: Any) -> Inject:
        def inject(control: EmulatorControl) -> None:
            control.add_fault(method=self.method, path=self.path, **fault)

        return inject


def outcome(kind: str, match: str, message: str, *, times: int = 1) -> Inject:
    """The next ``times`` operations of ``kind`` whose name contains ``match`` end in error
    with ``message``."""

    def inject(control: EmulatorControl) -> None:
        control.fail(kind, match, message, times=times)

    return inject


@dataclass(frozen=True)
class Cell:
    family: str
    kind: Kind
    expect: Outcome
    inject: Inject | None = None
    step: str = ""  # CLEAR_LINE: the step the one line names
    why: str = ""  # NOT_APPLICABLE: the reason
    builds: int = 1  # builds at the end (a failed one stays)
    executions: int = 2  # job executions at the end (db-init and migrate run once each)
    once: bool = False  # the faulty write is not safe to repeat: never sent again in place

    @property
    def id(self) -> str:
        return f"{self.family}-{self.kind}"


def generic(family: str, call: Call, *, once: bool = False) -> list[Cell]:
    """The five faults any HTTP call can meet; each is ridden out (retried; for a write that
    is not safe to repeat, ``once``: retried only when refused, otherwise re-observed and
    found)."""
    faults = {
        Kind.BURST_503: call.rule(code=503, times=3),
        Kind.RETRY_AFTER_429: call.rule(code=429, retry_after=1, times=1),
        Kind.ERROR_500: call.rule(code=500, times=2),
        Kind.DROPPED: call.rule(action="drop", times=1),
        Kind.SLOW_RESPONSE: call.rule(action="delay", seconds=SLOW_RESPONSE, times=1),
    }
    return [
        Cell(family, kind, Outcome.RIDDEN_OUT, inject, once=once) for kind, inject in faults.items()
    ]


def na(family: str, kind: Kind, why: str) -> Cell:
    return Cell(family, kind, Outcome.NOT_APPLICABLE, why=why)


NO_LRO = "its calls answer at once: there is no long-running operation to end in error"
NO_CONFLICT = "it has neither an operation-in-progress conflict nor a policy with an etag"
NO_GRANT = "none of its calls waits on a grant or a new service account"
ABORTED = {"code": 409, "status": "ABORTED", "message": "There were concurrent policy changes."}
SECRET_DENIED = (
    "spec.template.spec.containers[0].env[0].value_from.secret_key_ref.name: Permission denied "
    f"on secret: projects/{PROJECT}/secrets/{TENANT}-django-secret-key/versions/latest for "
    f"Revision service account {RUN_SA}. The service account used must be granted the "
    "'Secret Manager Secret Accessor' role (roles/secretmanager.secretAccessor) at the secret, "
    "project or higher level."
)

MATRIX: list[Cell] = [
    # -- Service Usage: batchEnable is a long-running operation ---------------------------------
    *generic("serviceusage", Call("POST", r"services:batchEnable$")),
    na("serviceusage", Kind.IN_PROGRESS_409, NO_CONFLICT),
    na("serviceusage", Kind.GRANT_PROPAGATING_403, NO_GRANT),
    na(
        "serviceusage",
        Kind.OPERATION_ERROR,
        "the emulator has no outcome rule for an enable operation (outcome kinds: build, "
        "execution, revision, sql.operation)",
    ),
    # -- IAM: service accounts ------------------------------------------------------------------
    *generic("iam", Call("POST", r"/serviceAccounts$")),
    na("iam", Kind.IN_PROGRESS_409, "djdeploy sets no policy through the IAM API itself"),
    Cell(
        "iam",
        Kind.GRANT_PROPAGATING_403,
        Outcome.RIDDEN_OUT,
        # a binding naming a service account made moments ago: IAM does not know it yet
        Call("POST", r"/v3/projects/[^/]+:setIamPolicy$").rule(
            code=400, message=f"Service account {RUN_SA} does not exist.", times=2
        ),
    ),
    na("iam", Kind.OPERATION_ERROR, NO_LRO),
    # -- Resource Manager: the project's IAM policy -----------------------------------------------
    *generic("resourcemanager", Call("POST", r"/v3/projects/[^/]+:setIamPolicy$")),
    Cell(
        "resourcemanager",
        Kind.IN_PROGRESS_409,
        Outcome.RIDDEN_OUT,
        Call("POST", r"/v3/projects/[^/]+:setIamPolicy$").rule(**ABORTED, times=1),
    ),
    na(
        "resourcemanager",
        Kind.GRANT_PROPAGATING_403,
        "the new-service-account refusal of a project binding is the iam row's",
    ),
    na("resourcemanager", Kind.OPERATION_ERROR, NO_LRO),
    # -- Secret Manager: adding a version is the write that must never happen twice -------------
    *generic(
        "secretmanager",
        Call("POST", r"/secrets/[^/]+:addVersion$"),
        once=True,
    ),
    Cell(
        "secretmanager",
        Kind.IN_PROGRESS_409,
        Outcome.RIDDEN_OUT,
        Call("POST", r"/secrets/[^/]+:setIamPolicy$").rule(**ABORTED, times=1),
    ),
    na(
        "secretmanager",
        Kind.GRANT_PROPAGATING_403,
        "a secretAccessor grant propagating is refused by Cloud Run (the run-services row)",
    ),
    na("secretmanager", Kind.OPERATION_ERROR, NO_LRO),
    # -- Cloud SQL Admin ------------------------------------------------------------------------
    *generic("sqladmin", Call("POST", r"/instances$")),
    Cell(
        "sqladmin",
        Kind.IN_PROGRESS_409,
        Outcome.RIDDEN_OUT,
        Call("POST", r"/instances/[^/]+/databases$").rule(
            code=409,
            status="FAILED_PRECONDITION",
            reason="operationInProgress",
            message="Operation failed because another operation was already in progress.",
            times=2,
        ),
    ),
    na("sqladmin", Kind.GRANT_PROPAGATING_403, NO_GRANT),
    Cell(
        "sqladmin",
        Kind.OPERATION_ERROR,
        Outcome.RIDDEN_OUT,  # the database is still missing: the step creates it again
        outcome("sql.operation", f"{TENANT}-django-pg/CREATE_DATABASE", "Database creation failed"),
    ),
    # -- Cloud Storage --------------------------------------------------------------------------
    *generic("storage", Call("POST", r"/storage/v1/b$")),
    Cell(
        "storage",
        Kind.IN_PROGRESS_409,
        Outcome.RIDDEN_OUT,
        # Storage's concurrent-policy-change conflict is a 412 on the etag
        Call("PUT", r"/storage/v1/b/[^/]+/iam$").rule(
            code=412, message="Precondition Failed", times=1
        ),
    ),
    na("storage", Kind.GRANT_PROPAGATING_403, NO_GRANT),
    na("storage", Kind.OPERATION_ERROR, NO_LRO),
    # -- Artifact Registry ----------------------------------------------------------------------
    *generic("artifactregistry", Call("POST", r"/repositories$")),
    Cell(
        "artifactregistry",
        Kind.IN_PROGRESS_409,
        Outcome.RIDDEN_OUT,
        Call("POST", r"/repositories/[^/]+:setIamPolicy$").rule(**ABORTED, times=1),
    ),
    na("artifactregistry", Kind.GRANT_PROPAGATING_403, NO_GRANT),
    na(
        "artifactregistry",
        Kind.OPERATION_ERROR,
        "the emulator has no outcome rule for a repository operation (outcome kinds: build, "
        "execution, revision, sql.operation)",
    ),
    # -- Cloud Build ----------------------------------------------------------------------------
    *generic(
        "cloudbuild",
        Call("POST", r"/builds$"),
        once=True,
    ),
    na("cloudbuild", Kind.IN_PROGRESS_409, NO_CONFLICT),
    na("cloudbuild", Kind.GRANT_PROPAGATING_403, NO_GRANT),
    Cell(
        "cloudbuild",
        Kind.OPERATION_ERROR,
        Outcome.CLEAR_LINE,
        outcome("build", "", "Step #0: it broke on purpose"),
        step="image",
        builds=2,
    ),
    # -- Cloud Run services ---------------------------------------------------------------------
    *generic("run-services", Call("POST", r"/services$")),
    Cell(
        "run-services",
        Kind.IN_PROGRESS_409,
        Outcome.RIDDEN_OUT,
        Call("POST", r"/services/[^/]+:setIamPolicy$").rule(**ABORTED, times=1),
    ),
    Cell(
        "run-services",
        Kind.GRANT_PROPAGATING_403,
        Outcome.RIDDEN_OUT,
        outcome("revision", f"{TENANT}-django", SECRET_DENIED),
    ),
    Cell(
        "run-services",
        Kind.OPERATION_ERROR,
        Outcome.CLEAR_LINE,
        # a first up deploys one revision (its a.run.app host allowed by a pattern known up
        # front): a container that never starts fails it
        outcome("revision", f"{TENANT}-django", "Container failed to start"),
        step="service",
    ),
    # -- Cloud Run jobs -------------------------------------------------------------------------
    *generic("run-jobs", Call("POST", r"/jobs$")),
    na("run-jobs", Kind.IN_PROGRESS_409, NO_CONFLICT),
    Cell(
        "run-jobs",
        Kind.GRANT_PROPAGATING_403,
        Outcome.CLEAR_LINE,
        Call("POST", r"/jobs$").rule(
            code=403,
            message=(
                "Permission 'iam.serviceaccounts.actAs' denied on service account "
                f"{RUN_SA} (or it may not exist)."
            ),
            times=1,
        ),
        step="db-init",
    ),
    na(
        "run-jobs",
        Kind.OPERATION_ERROR,
        "the emulator has no outcome rule for a job operation; a failed execution is the "
        "run-executions row",
    ),
    # -- Cloud Run executions -------------------------------------------------------------------
    *generic(
        "run-executions",
        Call("POST", r"/jobs/[^/]+:run$"),
        once=True,
    ),
    na("run-executions", Kind.IN_PROGRESS_409, NO_CONFLICT),
    Cell(
        "run-executions",
        Kind.GRANT_PROPAGATING_403,
        Outcome.RIDDEN_OUT,
        outcome("execution", f"{TENANT}-django-migrate", SECRET_DENIED),
        executions=3,
    ),
    Cell(
        "run-executions",
        Kind.OPERATION_ERROR,
        Outcome.CLEAR_LINE,
        outcome("execution", f"{TENANT}-django-migrate", "Task failed: exit code 1"),
        step="migrate",
        executions=3,
    ),
]


def cases() -> list[Any]:
    """The matrix as pytest params: a not-applicable cell skips with its reason."""
    params = []
    for cell in MATRIX:
        marks = []
        if cell.expect is Outcome.NOT_APPLICABLE:
            marks.append(pytest.mark.skip(reason=f"{cell.id}: not applicable: {cell.why}"))
        params.append(pytest.param(cell, id=cell.id, marks=marks))
    return params


def test_the_matrix_is_whole() -> None:
    """Every family meets every kind exactly once; a not-applicable cell says why."""
    families = list(dict.fromkeys(c.family for c in MATRIX))
    assert sorted(c.id for c in MATRIX) == sorted(f"{f}-{k}" for f in families for k in Kind)
    for cell in MATRIX:
        assert (cell.expect is Outcome.NOT_APPLICABLE) == (cell.inject is None), cell.id
        assert (cell.expect is Outcome.NOT_APPLICABLE) == bool(cell.why), cell.id
        assert (cell.expect is Outcome.CLEAR_LINE) == bool(cell.step), cell.id


SHORT = {
    Outcome.RIDDEN_OUT: "ridden out",
    Outcome.CLEAR_LINE: "one line",
    Outcome.NOT_APPLICABLE: "n/a",
}


def matrix_table() -> str:
    """The matrix as the Markdown table docs/fault-matrix.md shows, and its outcome counts."""
    families = list(dict.fromkeys(c.family for c in MATRIX))
    by_id = {c.id: c for c in MATRIX}
    rows = [
        "| family | " + " | ".join(k.value for k in Kind) + " |",
        "|---|" + "---|" * len(Kind),
    ]
    for family in families:
        cells = [by_id[f"{family}-{k}"] for k in Kind]
        texts = [SHORT[c.expect] for c in cells]
        rows.append(f"| {family} | " + " | ".join(texts) + " |")
    counts = {o: sum(1 for c in MATRIX if c.expect is o) for o in Outcome}
    rows.append("")
    rows.append(
        f"{len(MATRIX)} cells ({len(families)} families x {len(Kind)} kinds): "
        f"{counts[Outcome.RIDDEN_OUT]} ridden out, {counts[Outcome.CLEAR_LINE]} one clear line "
        f"then converge, {counts[Outcome.NOT_APPLICABLE]} not applicable."
    )
    return "\n".join(rows) + "\n"


def test_the_docs_show_this_matrix() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "fault-matrix.md").read_text()
    assert matrix_table() in doc, (
        "docs/fault-matrix.md: paste tests.test_fault_matrix.matrix_table()"
    )


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("cell", cases())
def test_fault(emulator: EmulatorHandle, cell: Cell, monkeypatch: pytest.MonkeyPatch) -> None:
    requests = Requests(emulator.emu.handle)
    monkeypatch.setattr(emulator.emu, "handle", requests)
    monkeypatch.setattr(emulator.emu, "sleep", requests.hold)
    timeout = ()
    if cell.kind in (Kind.SLOW_RESPONSE, Kind.DROPPED):
        timeout = ("--request-timeout", REQUEST_TIMEOUT)
    assert cell.inject is not None
    cell.inject(emulator.control)

    code, output = cli(emulator, "up", *timeout)  # an exception escaping the CLI fails here
    requests.wait_idle()  # a request the client gave up on is still applied: wait for it
    assert emulator.control.faults() == [], "the fault never fired"
    if cell.kind is Kind.SLOW_RESPONSE:
        # a write safe to repeat is sent again (and the held one lands after it); one that is
        # not is never sent again: the held one lands at its deadline, and up finds it
        assert requests.held == [not cell.once], "the slow write was (not) sent again"
    assert emulator.control.outcomes() == [], "the outcome never fired"
    before = secret_digests(emulator)
    if cell.expect is Outcome.RIDDEN_OUT:
        assert code == 0, output
    else:
        assert code == 1, output
        assert failure_lines(output) == [f"failed {cell.step}"], output
        code, output = cli(emulator, "up")
        assert code == 0, output
        requests.wait_idle()

    code, output = cli(emulator, "plan")
    assert code == 0, output
    assert count(emulator, "cloudbuild.build") == cell.builds
    assert count(emulator, "run.execution") == cell.executions
    after = secret_digests(emulator)
    assert len(after) == len(SECRETS), sorted(after)
    assert {k: v for k, v in after.items() if k in before} == before


def cli(emulator: EmulatorHandle, command: str, *options: str) -> tuple[int, str]:
    """``djdeploy [options] <command> --tenant T`` (options: global ones)."""
    return djdeploy(emulator, *options, command, "--tenant", TENANT, scale=ENGINE_SCALE)


def failure_lines(output: str) -> list[str]:
    """What a failed up ends with: one line per failed step, then the resume hint and nothing
    else (no traceback). Answers "failed <step>" for each step that failed by itself (not those
    skipped after it). The console wraps a long line at its width: a line that starts neither
    a failure nor the hint continues the one before."""
    lines = output.rstrip("\n").splitlines()
    assert lines and lines[-1].startswith("run `djdeploy up` again"), output
    first = next(i for i, line in enumerate(lines) if line.startswith("failed "))
    failures: list[str] = []
    for line in lines[first:-1]:
        if line.startswith("failed "):
            failures.append(line)
        else:
            failures[-1] += line
    assert not any("Traceback" in f for f in failures), output
    return [f.split(":")[0] for f in failures if not f.startswith("failed not run:")]


def count(emulator: EmulatorHandle, kind: str) -> int:
    """How many resources of ``kind`` the emulator holds (through its admin API)."""
    return len(emulator.control.state(kind)[kind])


class Requests:
    """Wraps ``Emulator.handle``: counts the API requests being handled, so a test can wait
    until none is (a write the client gave up on is applied after up returns); and, as the
    emulator's sleep, holds a slow response until the client has sent it again (or until its
    deadline)."""

    def __init__(self, handle: Callable[..., Any]) -> None:
        self._handle = handle
        self._in_flight = 0
        self._handled: Counter[tuple[str, str]] = Counter()
        self._current = threading.local()
        self._changed = threading.Condition()
        self.held: list[bool] = []  # per held request: did the client send it again?

    def __call__(self, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        request = (method.upper(), path)
        self._current.request = request
        with self._changed:
            self._in_flight += 1
        try:
            return self._handle(method, path, *args, **kwargs)
        finally:
            with self._changed:
                self._in_flight -= 1
                self._handled[request] += 1
                self._changed.notify_all()

    def hold(self, seconds: float) -> None:
        """A "delay" fault's sleep: until the same request has been handled once more (the
        client timed out and sent it again), ``seconds`` at most (the emulator cuts them at the
        deadline the request names); so a held write safe to repeat lands after the retry
        whatever the load, and one that is not lands at its deadline, unanswered."""
        request = self._current.request
        with self._changed:
            before = self._handled[request]
            resent = self._changed.wait_for(lambda: self._handled[request] > before, seconds)
            self.held.append(resent)

    def wait_idle(self) -> None:
        with self._changed:
            # a bound for a hang, not a timing assertion: SLOW_RESPONSE is the longest request
            done = self._changed.wait_for(lambda: self._in_flight == 0, timeout=2 * SLOW_RESPONSE)
            assert done, "a request hangs"


def secret_digests(emulator: EmulatorHandle) -> dict[str, str]:
    """Every secret version there is, by name, as a digest of its value (read through the real
    Secret Manager client; the value itself never leaves this function)."""
    from google.api_core.exceptions import NotFound
    from google.cloud import secretmanager

    client = secretmanager.SecretManagerServiceClient(**gapic_options(emulator.url))
    digests = {}
    for sid in SECRETS:
        parent = f"projects/{PROJECT}/secrets/{TENANT}-django-{sid}"
        try:
            versions = list(client.list_secret_versions(parent=parent))
        except NotFound:  # not made yet: up stopped before the secrets step
            continue
        for version in versions:
            payload = client.access_secret_version(name=version.name).payload.data
            digests[version.name] = hashlib.sha256(payload).hexdigest()
    return digests
