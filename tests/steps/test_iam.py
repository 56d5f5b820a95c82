"""The iam-runtime and iam-build steps: the pure policy helpers, the diff table, and up /
no-op / drift / 409 ABORTED / not-yet-visible account / destroy against the emulator."""

from __future__ import annotations

import pytest

from deployer.clock import VirtualClock
from deployer.config import Config, SecretRef
from deployer.emulator import policies
from deployer.engine import Engine, Options
from deployer.errors import Conflict, InvalidArgument, Transient
from deployer.gcp import policy as iam_policy
from deployer.gcp.clients import ClientFactory
from deployer.gcp.cloud import Cloud
from deployer.steps.apis import Apis
from deployer.steps.base import Action, Secret
from deployer.steps.bucket import MediaBucket, SourcesBucket
from deployer.steps.iam import PROPAGATION_ATTEMPTS, IamBuild, IamDeployer, IamRuntime, Target
from deployer.steps.registry import Registry
from deployer.steps.secrets import Secrets
from deployer.steps.service_accounts import ServiceAccounts
from tests.contract import check_transcript

pytestmark = pytest.mark.virtual_clock  # the engine and the emulator share emulator.clock

PROJECT = "iam-steps-proj"
CONFIG = Config(tenant="demo", project=PROJECT, secret_env={"API_TOKEN": SecretRef("api-token")})
RUNTIME = IamRuntime(CONFIG)
BUILD = IamBuild(CONFIG)
RUN_SA = f"serviceAccount:{CONFIG.names.runtime_sa_email}"
BUILD_SA = f"serviceAccount:{CONFIG.names.build_sa_email}"
STEPS = [
    Apis(CONFIG),
    ServiceAccounts(CONFIG),
    Secrets(CONFIG),
    MediaBucket(CONFIG),
    SourcesBucket(CONFIG),
    Registry(CONFIG),
    RUNTIME,
    BUILD,
]


# -- pure helpers ------------------------------------------------------------------------------


def test_missing_and_present_bindings():
    policy = {
        "bindings": [
            {
                "role": "roles/a",
                "members": ["user:x", "serviceAccount:s@p.iam.gserviceaccount.com"],
            },
            {
                "role": "roles/b",
                "members": ["deleted:serviceAccount:t@p.iam.gserviceaccount.com?uid=1"],
            },
            {"role": "roles/c", "members": ["user:y"], "condition": {"expression": "true"}},
        ]
    }
    wanted = {
        "roles/a": {"serviceAccount:s@p.iam.gserviceaccount.com"},
        "roles/b": {"serviceAccount:t@p.iam.gserviceaccount.com"},
        "roles/c": {"user:y"},
    }
    assert iam_policy.missing_bindings(policy, wanted) == {
        "roles/b": {"serviceAccount:t@p.iam.gserviceaccount.com"},
        "roles/c": {"user:y"},  # a conditional binding does not count
    }
    assert iam_policy.missing_bindings(None, {"roles/a": {"user:x"}}) == {"roles/a": {"user:x"}}
    present = iam_policy.present_bindings(policy, wanted)
    assert present["roles/b"] == {"deleted:serviceAccount:t@p.iam.gserviceaccount.com?uid=1"}


def _policies(*grants: tuple[str, str, str]) -> dict:
    out: dict[str, dict] = {t.key: {"bindings": []} for t in RUNTIME.targets()}
    for key, role, member in grants:
        out[key]["bindings"].append({"role": role, "members": [member]})
    return {"policies": out}


ALL_RUNTIME = [
    (t.key, role, member)
    for t in RUNTIME.targets()
    for role, ms in t.wanted.items()
    for member in ms
]


@pytest.mark.parametrize(
    ("observed", "action", "missing"),
    [
        (None, Action.UPDATE, len(ALL_RUNTIME)),
        (_policies(*ALL_RUNTIME), Action.NOOP, 0),
        (_policies(*ALL_RUNTIME[1:]), Action.UPDATE, 1),
        (_policies(*[g for g in ALL_RUNTIME if g[0] != "project"]), Action.UPDATE, 1),
    ],
)
def test_runtime_diff(observed, action, missing):
    change = RUNTIME.diff(observed)
    assert change.action is action
    assert len(change.fields) == missing
    assert change.reason


def test_bindings_table_is_least_privilege():
    runtime = {(t.key, r) for t in RUNTIME.targets() for r in t.wanted}
    n = CONFIG.names
    assert runtime == {
        ("project", "roles/cloudsql.client"),
        (f"bucket/{n.bucket}", "roles/storage.objectAdmin"),
        (f"bucket/{n.bucket}", "roles/storage.legacyBucketReader"),
        *(
            (f"secret/{s}", "roles/secretmanager.secretAccessor")
            for s in (n.secret_db_password, n.secret_key, n.secret_superuser_password, "api-token")
        ),
    }
    build = {(t.key, r) for t in BUILD.targets() for r in t.wanted}
    assert build == {
        ("project", "roles/logging.logWriter"),
        (f"bucket/{n.staging_bucket}", "roles/storage.objectViewer"),
        (f"repository/{n.registry}", "roles/artifactregistry.writer"),
    }


# -- the retry bound -----------------------------------------------------------------------------


def _refusals():
    """setIamPolicy refusals as they interleave in production: concurrent writers (409 ABORTED)
    while a new account is still invisible to IAM (400), forever."""
    n = 0
    while True:
        n += 1
        if n % 8 == 0:
            yield InvalidArgument(
                "Service account b@p.iam.gserviceaccount.com does not exist (HTTP 400)", code=400
            )
        else:
            yield Conflict("concurrent policy change (HTTP 409)", code=409, status="ABORTED")


def test_one_retry_layer_bounds_the_read_modify_writes():
    """Conflicts and a not-yet-visible account are retried by one read-modify-write loop:
    at most PROPAGATION_ATTEMPTS writes (nested layers made it 12 x 8), and the resource's
    lock is not held while the loop sleeps."""
    from deployer.gcp import policy as pol

    refusals = _refusals()
    calls = {"get": 0, "set": 0}
    key = f"{PROJECT}/bound-test"

    def get(_cloud):
        calls["get"] += 1
        return {"etag": "e", "bindings": []}

    def put(_cloud, _policy):
        calls["set"] += 1
        raise next(refusals)

    class Clock(VirtualClock):
        def sleep(self, seconds):
            assert not pol._lock(key).locked(), "slept while holding the policy lock"

    cloud = Cloud(PROJECT, CONFIG.region, clients=None, clock=Clock())  # type: ignore[arg-type]
    target = Target("bound-test", {"roles/x": frozenset({BUILD_SA})}, get, put)
    with pytest.raises((Conflict, InvalidArgument)):
        BUILD._ensure(cloud, target)
    assert calls["set"] == PROPAGATION_ATTEMPTS
    assert calls["get"] == PROPAGATION_ATTEMPTS


def test_transient_errors_are_not_retried_by_the_read_modify_write():
    """A transient error left after get/set's own retries is not retried again around them."""
    calls = {"set": 0}

    def put(_cloud, _policy):
        calls["set"] += 1
        raise Transient("backend unavailable (HTTP 503)", code=503)

    cloud = Cloud(PROJECT, CONFIG.region, clients=None, clock=VirtualClock())  # type: ignore[arg-type]
    target = Target("t", {"roles/x": frozenset({BUILD_SA})}, lambda c: {"bindings": []}, put)
    with pytest.raises(Transient):
        BUILD._ensure(cloud, target)
    assert calls["set"] == 1  # here set is a bare function; the wrappers' cloud.call retries


# -- against the emulator ----------------------------------------------------------------------


def _cloud(emulator) -> Cloud:
    return Cloud(
        PROJECT,
        CONFIG.region,
        ClientFactory(endpoint=emulator.url, project=PROJECT),
        clock=emulator.clock,
    )


def _writes(emulator) -> list[str]:
    return [
        f"{e['method']} {e['path']}"
        for e in emulator.emu.transcript.entries()
        if e["method"] != "GET" and not e["path"].endswith(":getIamPolicy")
    ]


def _members(policy: dict, role: str) -> set[str]:
    return {m for b in policy.get("bindings", []) if b["role"] == role for m in b["members"]}


def _seed_user_secret(cloud: Cloud) -> None:
    """The user's own secret (secret_env) must exist before up."""
    cloud.secrets.create_secret("api-token", labels={})
    cloud.secrets.add_version("api-token", Secret("token-value"))


def test_up_noop_drift_conflict_destroy(emulator):
    cloud = _cloud(emulator)
    emulator.control.set_latency(durations={"iam.sa.propagation": 0})
    engine = Engine(cloud, options=Options.scaled(0.001))
    from deployer.emulator import serviceusage

    serviceusage.set_enabled(emulator.emu, PROJECT, "secretmanager.googleapis.com")
    _seed_user_secret(cloud)
    # a concurrent policy change on the first project write: redo the read-modify-write
    emulator.control.add_fault(
        method="POST",
        path=r"^/v3/projects/[^/]+:setIamPolicy$",
        code=409,
        status="ABORTED",
        message=policies.CONFLICT_MESSAGE,
        times=1,
    )
    result = engine.up(STEPS)
    assert result.ok, [r for r in result.results if r.error]
    assert any(e["status"] == 409 for e in emulator.emu.transcript.entries())

    project = cloud.projects.get_iam_policy()
    assert _members(project, "roles/cloudsql.client") == {RUN_SA}
    assert _members(project, "roles/logging.logWriter") == {BUILD_SA}
    media = cloud.storage.get_iam_policy(CONFIG.names.bucket)
    assert RUN_SA in _members(media, "roles/storage.objectAdmin")
    assert RUN_SA in _members(media, "roles/storage.legacyBucketReader")
    assert f"projectEditor:{PROJECT}" in _members(media, "roles/storage.legacyBucketOwner")  # kept
    for s in RUNTIME.secret_ids():
        assert _members(cloud.secrets.get_iam_policy(s), "roles/secretmanager.secretAccessor") == {
            RUN_SA
        }
    staging = cloud.storage.get_iam_policy(CONFIG.names.staging_bucket)
    assert _members(staging, "roles/storage.objectViewer") == {BUILD_SA}
    repo = cloud.registry.get_iam_policy(CONFIG.names.registry)
    assert _members(repo, "roles/artifactregistry.writer") == {BUILD_SA}

    emulator.emu.transcript.clear()
    again = engine.up(STEPS)
    assert again.ok and not any(r.changed for r in again.results)
    assert _writes(emulator) == []

    # drift: a binding dropped from the project policy by hand
    pol = cloud.projects.get_iam_policy()
    pol["bindings"] = [b for b in pol["bindings"] if b["role"] != "roles/cloudsql.client"]
    cloud.projects.set_iam_policy(pol)
    planned = {c.step: c for c in engine.plan(STEPS)}
    assert [f.path for f in planned["iam-runtime"].fields] == ["project:roles/cloudsql.client"]
    assert planned["iam-build"].action is Action.NOOP
    assert engine.up(STEPS).ok
    assert _members(cloud.projects.get_iam_policy(), "roles/cloudsql.client") == {RUN_SA}

    # destroy: our members leave the project policy and the kept resources' policies,
    # including the deleted:serviceAccount form a binding takes once its account is gone
    cloud.iam.delete_service_account(CONFIG.names.runtime_sa_email)
    tomb = _members(cloud.projects.get_iam_policy(), "roles/cloudsql.client")
    assert tomb and all(m.startswith("deleted:") for m in tomb)
    done = {c.step: c for c in engine.destroy(STEPS, delete_data=False)}
    assert done["iam-runtime"].action is Action.DELETE and done["iam-build"].action is Action.DELETE
    project = cloud.projects.get_iam_policy()
    assert not _members(project, "roles/cloudsql.client") | _members(
        project, "roles/logging.logWriter"
    )
    media = cloud.storage.get_iam_policy(CONFIG.names.bucket)  # kept: holds media
    assert RUN_SA not in _members(media, "roles/storage.objectAdmin")
    assert RUN_SA not in _members(
        cloud.secrets.get_iam_policy(CONFIG.names.secret_key), "roles/secretmanager.secretAccessor"
    )
    twice = {c.step: c for c in engine.destroy(STEPS, delete_data=False)}
    assert twice["iam-runtime"].action is Action.NOOP and twice["iam-build"].action is Action.NOOP
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_binding_for_an_account_not_visible_yet_is_retried(emulator):
    """IAM refuses (400) a binding naming an account it does not see yet: the same
    read-modify-write is retried with backoff until it is accepted."""
    cloud = _cloud(emulator)
    emulator.control.set_latency(durations={"iam.sa.propagation": 0})
    steps = [Apis(CONFIG), ServiceAccounts(CONFIG), SourcesBucket(CONFIG), Registry(CONFIG), BUILD]
    assert Engine(cloud, options=Options.scaled(0.001)).up(steps).ok
    pol = cloud.projects.get_iam_policy()
    pol["bindings"] = [b for b in pol["bindings"] if b["role"] != "roles/logging.logWriter"]
    cloud.projects.set_iam_policy(pol)
    # the build account becomes invisible to IAM for 0.3 s of the emulator's clock
    sa = emulator.emu.store.get(policies.SA_KIND, CONFIG.names.build_sa_email)
    sa["_visibleAt"] = emulator.clock.now() + 0.3
    emulator.emu.store.put(policies.SA_KIND, CONFIG.names.build_sa_email, sa)
    emulator.emu.transcript.clear()

    change = BUILD.diff(BUILD.observe(cloud))
    assert change.action is Action.UPDATE
    BUILD.apply(cloud, change)
    sets = [
        e["status"]
        for e in emulator.emu.transcript.entries()
        if e["path"].endswith(":setIamPolicy")
    ]
    assert sets[0] == 400 and sets[-1] == 200
    assert BUILD.diff(BUILD.observe(cloud)).action is Action.NOOP
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_the_deployer_accounts_roles_converge(emulator, monkeypatch):
    """iam-deployer revokes the roles djdeploy granted its account and no longer wants (a
    [[cron]] removed; a role an upgrade no longer grants) in the one read-modify-write that
    grants: another member's binding of the same role, and a role djdeploy never grants that
    was added to the account by hand, stay."""
    from deployer.steps import ci

    cloud = _cloud(emulator)
    emulator.control.set_latency(durations={"iam.sa.propagation": 0})
    engine = Engine(cloud, options=Options.scaled(0.001))
    cron = [{"name": "n", "schedule": "0 3 * * *", "command": "x"}]
    with_cron = Config(tenant="demo", project=PROJECT, ci={"github": "a/b"}, cron=cron)
    without = Config(tenant="demo", project=PROJECT, ci={"github": "a/b"})
    me = f"serviceAccount:{without.names.deployer_sa_email}"

    def steps(config: Config) -> list:
        return [Apis(config), ServiceAccounts(config), IamDeployer(config)]

    assert engine.up(steps(with_cron)).ok
    pol = cloud.projects.get_iam_policy()
    pol["bindings"] += [
        {"role": ci.SCHEDULER_ROLE, "members": ["user:ops@example.com"]},
        {"role": "roles/logging.viewer", "members": [me]},
    ]
    cloud.projects.set_iam_policy(pol)
    assert me in _members(cloud.projects.get_iam_policy(), ci.SCHEDULER_ROLE)

    [change] = [c for c in engine.plan(steps(without)) if c.step == "iam-deployer"]
    assert change.action is Action.UPDATE and change.reason == "1 no longer wanted"
    assert [(f.path, f.old, f.new) for f in change.fields] == [
        (f"project:{ci.SCHEDULER_ROLE}", me, None)
    ]
    emulator.emu.transcript.clear()
    assert engine.up(steps(without)).ok
    assert _writes(emulator) == [f"POST /v3/projects/{PROJECT}:setIamPolicy"]
    project = cloud.projects.get_iam_policy()
    assert _members(project, ci.SCHEDULER_ROLE) == {"user:ops@example.com"}
    assert _members(project, "roles/logging.viewer") == {me}  # never granted by djdeploy
    assert me in _members(project, "roles/run.admin")

    # an upgrade that no longer grants a role: missing and revoked in the same write
    monkeypatch.setattr(ci, "DEPLOYER_ROLES", tuple(ci.DEPLOYER_ROLES[1:]))
    gone = ci.GRANTED_ROLES[0]
    pol = cloud.projects.get_iam_policy()
    pol["bindings"] = [b for b in pol["bindings"] if b["role"] != "roles/run.admin"]
    cloud.projects.set_iam_policy(pol)
    [change] = [c for c in engine.plan(steps(without)) if c.step == "iam-deployer"]
    assert (
        change.reason
        == f"1 of {len(ci.deployer_roles(without))} bindings missing; 1 no longer wanted"
    )
    emulator.emu.transcript.clear()
    assert engine.up(steps(without)).ok
    assert _writes(emulator) == [f"POST /v3/projects/{PROJECT}:setIamPolicy"]
    project = cloud.projects.get_iam_policy()
    assert me not in _members(project, gone) and me in _members(project, "roles/run.admin")

    # destroy removes every role of ours, the ones no longer wanted too
    pol["bindings"] = [*project["bindings"], {"role": gone, "members": [me]}]
    cloud.projects.set_iam_policy({**pol, "etag": project["etag"]})
    done = {c.step: c for c in engine.destroy(steps(without), delete_data=False)}
    assert done["iam-deployer"].action is Action.DELETE
    left = cloud.projects.get_iam_policy()
    assert not [b for b in left["bindings"] if me in b["members"] and b["role"] in ci.GRANTED_ROLES]
    assert check_transcript(emulator.emu.transcript.entries()) == []
