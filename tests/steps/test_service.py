"""Service step: diff tables, then up / no-op up / drift / propagation / faults / destroy on the
emulator. Also the seeding helpers the other Cloud Run step tests use."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
from django.http.request import validate_host
from djdeploy_container.djdeploy_runtime.discover import HostPattern

from deployer.config import Config, SecretRef, ServiceConfig
from deployer.emulator import policies, serviceusage
from deployer.engine import Engine, Options
from deployer.errors import StepFailed
from deployer.gcp.clients import ClientFactory
from deployer.gcp.cloud import Cloud
from deployer.steps import container_env as ce
from deployer.steps.base import Action, Broken, Failure, NotOurs, Secret, Transient
from deployer.steps.container_env import SECRET_GRANT_RETRY
from deployer.steps.rollout import REDEPLOY_ANNOTATION
from deployer.steps.service import Service
from tests.contract import check_transcript

pytestmark = pytest.mark.virtual_clock  # the engine and the emulator share emulator.clock

PROJECT = "run-steps-proj"
REGION = "europe-west1"
NUMBER = "123456789012"
IMAGE_REPO = f"{REGION}-docker.pkg.dev/{PROJECT}/demo-django/django"
IMAGE = f"{IMAGE_REPO}:abc123"
ACCESSOR = "roles/secretmanager.secretAccessor"
MUTATING = ("POST", "PATCH", "PUT", "DELETE")
READ_ONLY_POSTS = (":getIamPolicy", ":access", ":testIamPermissions")


def config(**kw: Any) -> Config:
    return Config(tenant="demo", project=PROJECT, region=REGION, **kw)


CFG = config()
INPUTS = ce.Inputs(
    NUMBER,
    {CFG.names.secret_key: "1", CFG.names.secret_db_password: "2"},
)


# -- helpers shared with test_jobs / test_invoker ------------------------------------------------


def make_cloud(emulator: Any) -> Cloud:
    return Cloud(
        PROJECT, REGION, ClientFactory(endpoint=emulator.url, project=PROJECT), clock=emulator.clock
    )


def make_engine(cloud: Cloud) -> Engine:
    return Engine(cloud, options=Options.scaled(0.001))


def seed(
    emulator: Any,
    cloud: Cloud,
    cfg: Config = CFG,
    *,
    grant: bool = True,
    propagated: bool = True,
    image: str | None = IMAGE,
) -> None:
    """What the steps before ours would have made: APIs on, the runtime SA, the three secrets
    with a version, the runtime SA's secretAccessor grants, the image tag."""
    emu = emulator.emu
    for api in ("run.googleapis.com", "secretmanager.googleapis.com"):
        serviceusage.set_enabled(emu, PROJECT, api)
    names = cfg.names
    emu.store.put(
        policies.SA_KIND,
        names.runtime_sa_email,
        {"email": names.runtime_sa_email, "_visibleAt": 0.0},
    )
    for sid in (names.secret_key, names.secret_db_password, names.secret_superuser_password):
        if cloud.secrets.get_secret(sid) is None:
            cloud.secrets.create_secret(sid, dict(names.labels))
            cloud.secrets.add_version(sid, Secret("s3cret-" + sid))
        if grant:
            grant_secret(emulator, sid, names.runtime_sa_email, propagated=propagated)
    if image:
        emu.store.put("artifactregistry.tag", image, {"name": image})


def grant_secret(emulator: Any, sid: str, sa: str, *, propagated: bool = True) -> None:
    emu = emulator.emu
    key = f"projects/{PROJECT}/secrets/{sid}"
    policy = policies.get_policy(emu, key)
    policy["bindings"].append({"role": ACCESSOR, "members": [f"serviceAccount:{sa}"]})
    policies.set_policy(emu, key, {"version": 3, "bindings": policy["bindings"]})
    if propagated:
        emu.store.put(policies.GRANTED_KIND, f"{key}|{ACCESSOR}|serviceAccount:{sa}", {"at": 0.0})


def alone(step: Any) -> Any:
    """The step without its needs (the steps before it are seeded instead)."""
    if any(f.name == "run_needs" for f in dataclasses.fields(step)):
        return dataclasses.replace(step, needs=(), run_needs=())
    return dataclasses.replace(step, needs=())


def mutating(entries: list[dict[str, Any]]) -> list[str]:
    return [
        f"{e['method']} {e['path']}"
        for e in entries
        if e["method"] in MUTATING and not e["path"].endswith(READ_ONLY_POSTS)
    ]


def assert_contract(emulator: Any) -> None:
    problems = check_transcript(emulator.emu.transcript.entries())
    assert problems == []


# -- diff tables ---------------------------------------------------------------------------------


def live(cfg: Config = CFG, image: str = IMAGE, **over: Any) -> dict[str, Any]:
    """A ready service as the client's to_dict shows it: our spec plus server defaults."""
    body = Service(cfg, image).desired(INPUTS)
    svc = copy.deepcopy(body)
    svc["name"] = f"projects/{PROJECT}/locations/{REGION}/services/{cfg.names.service}"
    c = svc["template"]["containers"][0]
    c["ports"][0]["name"] = "http1"
    c["resources"]["cpuIdle"] = True
    c["startupProbe"]["httpGet"]["port"] = 8080
    c["livenessProbe"]["httpGet"]["port"] = 8080
    c["args"] = []
    svc["template"]["annotations"] = {}
    svc["template"]["vpcAccess"] = None
    rev = f"{svc['name']}/revisions/{cfg.names.service}-00001-abc"
    svc.update(
        generation="1",
        observedGeneration="1",
        reconciling=False,
        terminalCondition={"type": "Ready", "state": "CONDITION_SUCCEEDED", "message": ""},
        latestReadyRevision=rev,
        latestCreatedRevision=rev,
        etag='"x"',
    )
    for path, value in over.items():
        target = svc
        keys = path.split("__")
        for k in keys[:-1]:
            target = target[int(k)] if isinstance(target, list) else target[k]
        target[keys[-1]] = value
    return {"service": svc, "inputs": INPUTS}


def with_scaling_min(n: int) -> dict[str, Any]:
    obs = live()
    obs["service"]["template"]["scaling"]["minInstanceCount"] = n
    return obs


def without_min_scaling() -> dict[str, Any]:
    obs = live()
    del obs["service"]["template"]["scaling"]["minInstanceCount"]  # proto3 omits the zero
    return obs


def with_env_version(version: str) -> dict[str, Any]:
    obs = live()
    for e in obs["service"]["template"]["containers"][0]["env"]:
        if e["name"] == "SECRET_KEY":
            e["valueSource"]["secretKeyRef"]["version"] = version
    return obs


@pytest.mark.parametrize(
    ("observed", "action", "paths", "failure"),
    [
        (None, Action.CREATE, [], ""),
        (live(), Action.NOOP, [], ""),
        (without_min_scaling(), Action.NOOP, [], ""),
        (with_scaling_min(2), Action.UPDATE, ["template.scaling.minInstanceCount"], ""),
        (live(ingress="INGRESS_TRAFFIC_INTERNAL_ONLY"), Action.UPDATE, ["ingress"], ""),
        (live(template__containers__0__image="o:1"), Action.UPDATE, ["template.containers"], ""),
        (with_env_version("7"), Action.UPDATE, ["template.containers"], ""),
        (
            live(labels={"managed-by": "djdeploy"}),
            Action.UPDATE,
            ["labels.djdeploy-tenant", "labels.djdeploy-app"],
            "",
        ),
        (live(labels={}), Action.REFUSE, [], "not created by djdeploy"),
        # another app's service (tenant label lost): Names.owns refuses it, managed-by alone
        # adopted it
        (
            live(labels={"managed-by": "djdeploy", "djdeploy-app": "other"}),
            Action.REFUSE,
            [],
            "not created by djdeploy",
        ),
        (live(reconciling=True), Action.WAIT, [], ""),
        (live(generation="2"), Action.WAIT, [], ""),
        (
            live(terminalCondition={"state": "CONDITION_FAILED", "message": "container failed"}),
            Action.UPDATE,
            [],
            "container failed",
        ),
        (
            live(
                template__annotations={REDEPLOY_ANNOTATION: "3"},
                template__timeout="300s",
            ),
            Action.NOOP,
            [],
            "",
        ),
    ],
)
def test_diff(
    observed: dict[str, Any] | None, action: Action, paths: list[str], failure: str
) -> None:
    change = Service(CFG, IMAGE).diff(observed)
    assert change.action is action, change
    assert [f.path for f in change.fields] == paths
    assert failure in str(change.failure or "")
    assert bool(failure) == (change.failure is not None)
    assert change.reason
    if observed is not None:
        assert change.info["url"] == f"https://demo-django-{NUMBER}.{REGION}.run.app"


def test_diff_names_missing_secret_versions() -> None:
    obs = live()
    obs["inputs"] = ce.Inputs(NUMBER, {CFG.names.secret_key: None})
    change = Service(CFG, IMAGE).diff(obs)
    assert change.action is Action.REFUSE and isinstance(change.failure, Broken)
    assert "SECRET_KEY (secret demo-django-secret-key)" in str(change.failure)


@pytest.mark.parametrize(
    ("observed", "kind"),
    [
        (live(labels={}), NotOurs),
        (live(terminalCondition={"state": "CONDITION_FAILED", "message": "exploded"}), Broken),
        (
            live(
                terminalCondition={
                    "state": "CONDITION_FAILED",
                    "message": "env[0]: Permission denied on secret: projects/1/secrets/s/...",
                }
            ),
            Transient,
        ),
    ],
)
def test_the_service_step_knows_which_failures_are_transient(
    observed: dict[str, Any], kind: type[Failure]
) -> None:
    """A revision that failed on a secret permission failed because a fresh grant had not
    reached Cloud Run yet: transient, deployed again after SECRET_GRANT_RETRY. Anything else
    is broken: deployed again once per up."""
    change = Service(CFG, IMAGE).diff(observed)
    failure = change.failure
    assert type(failure) is kind
    # the progress line says a transient one is expected and retried, not only "failed"
    assert ("has not reached Cloud Run yet" in change.reason) is isinstance(failure, Transient)
    if isinstance(failure, Transient):
        assert failure.delay == SECRET_GRANT_RETRY


def test_desired_template() -> None:
    cfg = config(
        service=ServiceConfig(min_instances=1, max_instances=5, ingress="internal", public=False),
        env={"FEATURE": "on"},
        secret_env={"API_TOKEN": SecretRef("api-token", version="4")},
    )
    inputs = ce.Inputs(NUMBER, {cfg.names.secret_key: "1", cfg.names.secret_db_password: "2"})
    body = Service(cfg, IMAGE).desired(inputs)
    t = body["template"]
    c = t["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    assert body["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    assert t["executionEnvironment"] == "EXECUTION_ENVIRONMENT_GEN2"
    assert t["scaling"] == {"minInstanceCount": 1, "maxInstanceCount": 5}
    assert t["serviceAccount"] == cfg.names.runtime_sa_email
    assert c["startupProbe"]["httpGet"]["path"] == "/health/?ready=1"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health/"
    assert {"name": "media", "mountPath": "/app/media"} in c["volumeMounts"]
    media = next(v for v in t["volumes"] if v["name"] == "media")
    assert media["gcs"]["mountOptions"][:3] == ["implicit-dirs", "uid=2000", "gid=2000"]
    own = f"demo-django-{NUMBER}.{REGION}.run.app"
    assert env["ALLOWED_HOSTS"]["value"] == f"{own},demo-django-*-ew.a.run.app"
    assert env["CSRF_TRUSTED_ORIGINS"]["value"] == f"https://demo-django-{NUMBER}.{REGION}.run.app"
    assert env["SECRET_KEY"]["valueSource"]["secretKeyRef"] == {
        "secret": cfg.names.secret_key,
        "version": "1",
    }
    assert env["API_TOKEN"]["valueSource"]["secretKeyRef"]["version"] == "4"
    assert env["FEATURE"]["value"] == "on"
    assert env["STATIC_ROOT"]["value"] == "/srv/static"  # outside the project tree (/app)
    assert env["MEDIA_ROOT"]["value"] == "/app/media"
    assert "DJANGO_SUPERUSER_PASSWORD" not in env
    assert all("latest" not in str(e) for e in c["env"])


def test_every_contract_variable_has_its_value_and_settings_module_is_optional() -> None:
    from deployer.contract import CONTRACT

    inputs = ce.Inputs(
        NUMBER,
        {**INPUTS.versions, CFG.names.secret_superuser_password: "3"},
        # rotated once: the old key is the fallback, the old superuser password the previous one
        previous={CFG.names.secret_key: "1", CFG.names.secret_superuser_password: "2"},
    )
    configured = config(settings_module="mysite.settings.production")
    for target in ce.TARGETS:
        wanted = {v.name for v in CONTRACT if v.where in ("all", target)}
        fallback = ce.build_env(CFG, target, ce.Inputs(NUMBER, inputs.versions))
        never_rotated = {e["name"] for e in fallback}
        assert not never_rotated & {"SECRET_KEY_FALLBACKS", "DJANGO_SUPERUSER_PASSWORD_PREVIOUS"}
        env = {e["name"]: e for e in ce.build_env(configured, target, inputs)}
        assert set(env) == wanted, target
        assert env["DJANGO_PROJECT_SETTINGS"] == {
            "name": "DJANGO_PROJECT_SETTINGS",
            "value": "mysite.settings.production",
        }
        # not configured: left unset, the container finds the settings from manage.py
        default = {e["name"] for e in ce.build_env(CFG, target, inputs)}
        assert default == wanted - {"DJANGO_PROJECT_SETTINGS"}


def test_settings_module_changes_the_service_template() -> None:
    before = Service(CFG, IMAGE).diff(live())
    assert before.action is Action.NOOP
    change = Service(config(settings_module="mysite.settings"), IMAGE).diff(live())
    assert change.action is Action.UPDATE
    assert [f.path for f in change.fields] == ["template.containers"]


# -- on the emulator -----------------------------------------------------------------------------


def test_up_noop_drift_destroy(emulator: Any) -> None:
    cloud = make_cloud(emulator)
    seed(emulator, cloud)
    step = alone(Service(CFG, IMAGE))
    engine = make_engine(cloud)

    result = engine.up([step])
    assert result.ok, result.results
    svc = cloud.run.get_service(CFG.names.service)
    assert svc is not None
    number = cloud.projects.number()
    assert svc["urls"][0] == f"https://demo-django-{number}.{REGION}.run.app"
    assert result.info("url") == svc["urls"][0]
    assert svc["latestReadyRevision"] == svc["latestCreatedRevision"]

    # a second up changes nothing
    emulator.emu.transcript.clear()
    again = engine.up([step])
    assert again.ok and again.results[0].first.action is Action.NOOP
    assert mutating(emulator.emu.transcript.entries()) == []

    # drift: a scaling value changed behind our back
    svc["template"]["scaling"]["maxInstanceCount"] = 9
    cloud.run.update_service({**svc, "name": CFG.names.service})
    fixed = engine.up([step])
    assert fixed.ok
    assert fixed.results[0].first.action in (Action.WAIT, Action.UPDATE)
    assert cloud.run.get_service(CFG.names.service)["template"]["scaling"]["maxInstanceCount"] == 3

    # drift: the service deleted
    cloud.run.delete_service(CFG.names.service)
    assert engine.up([step]).ok
    assert cloud.run.get_service(CFG.names.service) is not None

    # destroy twice
    assert engine.destroy([step], delete_data=False)[0].action is Action.DELETE
    assert cloud.run.get_service(CFG.names.service) is None
    assert engine.destroy([step], delete_data=False)[0].action is Action.NOOP
    assert_contract(emulator)


def test_permission_denied_on_secret_is_ridden_out(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first deploy meets a grant that has not reached Cloud Run yet (the failure is
    Transient); the grant has propagated by the redeploy, which succeeds. No timing window:
    the grants would never propagate by themselves; the redeploy backdates them first."""
    cloud = make_cloud(emulator)
    seed(emulator, cloud)
    emu = emulator.emu
    emulator.control.set_latency(durations={"iam.secret_grant.propagation": 1e9})

    def grants_made(at: float) -> None:
        for key, _ in emu.store.list(policies.GRANTED_KIND):
            emu.store.put(policies.GRANTED_KIND, key, {"at": at})

    grants_made(emu.clock())  # just now: not effective for the first deploy
    update_service = cloud.run.update_service

    def propagated_then_update(*args: Any, **kwargs: Any) -> Any:
        grants_made(emu.clock() - 2e9)
        return update_service(*args, **kwargs)

    monkeypatch.setattr(cloud.run, "update_service", propagated_then_update)
    result = make_engine(cloud).up([alone(Service(CFG, IMAGE))])
    assert result.ok, result.results
    entries = emulator.emu.transcript.entries()
    deploys = [e for e in entries if e["method"] in ("POST", "PATCH") and "/services" in e["path"]]
    failed = [e for e in entries if "Permission denied on secret" in str(e.get("response"))]
    assert failed, "the first deploy should have met the propagation window"
    assert len(deploys) == 2  # created, then redeployed once the grant propagated
    assert_contract(emulator)


def test_failed_revision_keeps_the_previous_one_serving(emulator: Any) -> None:
    cloud = make_cloud(emulator)
    seed(emulator, cloud)
    engine = make_engine(cloud)
    assert engine.up([alone(Service(CFG, IMAGE))]).ok
    good = cloud.run.get_service(CFG.names.service)["latestReadyRevision"]

    bad_image = f"{IMAGE_REPO}:def456"
    emulator.emu.store.put("artifactregistry.tag", bad_image, {"name": bad_image})
    emulator.control.fail("revision", CFG.names.service, ce_message := "container exploded")
    result = engine.up([alone(Service(CFG, bad_image))])
    assert not result.ok
    assert ce_message in result.results[0].error
    svc = cloud.run.get_service(CFG.names.service)
    assert svc["latestReadyRevision"] == good
    assert svc["latestCreatedRevision"] != good
    assert svc["terminalCondition"]["state"] == "CONDITION_FAILED"

    # the next up deploys again (the outcome was used up) and succeeds
    assert engine.up([alone(Service(CFG, bad_image))]).ok
    assert_contract(emulator)


def test_missing_image_fails_clearly(emulator: Any) -> None:
    cloud = make_cloud(emulator)
    seed(emulator, cloud, image=None)
    result = make_engine(cloud).up([alone(Service(CFG, IMAGE))])
    assert not result.ok
    assert f"Image '{IMAGE}' not found" in result.results[0].error


def test_faults_are_ridden_out(emulator: Any) -> None:
    cloud = make_cloud(emulator)
    seed(emulator, cloud)
    emulator.control.add_fault(method="POST", path="/services$", code=503, times=2)
    emulator.control.add_fault(
        method="GET", path="/services/demo-django$", code=429, retry_after=0, times=2
    )
    assert make_engine(cloud).up([alone(Service(CFG, IMAGE))]).ok


def test_not_ours_is_refused(emulator: Any) -> None:
    cloud = make_cloud(emulator)
    seed(emulator, cloud)
    foreign = config(labels={})
    body = Service(foreign, "gcr.io/other/app:1").desired(INPUTS)
    body["labels"] = {"team": "other"}
    body["template"]["labels"] = {}
    cloud.run.create_service(CFG.names.service, body)
    emulator.emu.transcript.clear()
    result = make_engine(cloud).up([alone(Service(CFG, IMAGE))])
    assert not result.ok
    assert "not created by djdeploy" in result.results[0].error
    assert result.results[0].first is not None
    assert result.results[0].first.action is Action.REFUSE
    assert mutating(emulator.emu.transcript.entries()) == []  # a refusal is never applied
    kept = make_engine(cloud).destroy([alone(Service(CFG, IMAGE))], delete_data=False)
    assert kept[0].action is Action.NOOP


def test_step_failed_is_a_deploy_error() -> None:
    assert issubclass(StepFailed, Exception)


def test_hosts_cover_every_url_and_the_domains() -> None:
    """ALLOWED_HOSTS: the deterministic host, the older a.run.app host as a pattern (its hash
    is Cloud Run's), the configured domains; CSRF_TRUSTED_ORIGINS the exact ones as https
    origins. All known before the service exists. The jobs get the deterministic host and the
    domains only."""
    cfg = config(domains=("www.example.com", "example.com"))
    own = f"demo-django-{NUMBER}.{REGION}.run.app"
    env = {e["name"]: e.get("value") for e in ce.build_env(cfg, ce.SERVICE, INPUTS)}
    assert env["ALLOWED_HOSTS"] == f"{own},demo-django-*-ew.a.run.app,www.example.com,example.com"
    exact = [own, "www.example.com", "example.com"]
    assert env["CSRF_TRUSTED_ORIGINS"] == ",".join(f"https://{h}" for h in exact)
    job = {e["name"]: e.get("value") for e in ce.build_env(cfg, ce.DB_INIT, INPUTS)}
    assert job["ALLOWED_HOSTS"] == ",".join(exact)


def test_hosts_behind_a_load_balancer_leave_out_the_pattern() -> None:
    """A load balancer passes any Host: a service behind one (its run.app hosts closed to the
    internet) allows no a.run.app host of another project's service of the same name; a region
    whose code is not known has a pattern for it too."""
    cfg = config(service=ServiceConfig(ingress="internal-and-cloud-load-balancing"))
    env = {e["name"]: e.get("value") for e in ce.build_env(cfg, ce.SERVICE, INPUTS)}
    assert env["ALLOWED_HOSTS"] == f"demo-django-{NUMBER}.{REGION}.run.app"
    far = Config(tenant="demo", project=PROJECT, region="me-west1")
    assert far.names.run_app_host_pattern == "demo-django-*-*.a.run.app"


def test_up_allows_both_run_app_urls(emulator: Any) -> None:
    """Cloud Run's a.run.app URL is made up on the first deploy: the first revision allows it
    by its pattern, so a fresh up deploys one revision, and a second up changes nothing."""
    cloud = make_cloud(emulator)
    seed(emulator, cloud)
    step = alone(Service(CFG, IMAGE))
    engine = make_engine(cloud)
    assert engine.up([step]).ok
    svc = cloud.run.get_service(CFG.names.service)
    assert svc is not None and len(svc["urls"]) == 2
    assert "-00001-" in svc["latestReadyRevision"]  # one revision
    env = {e["name"]: e.get("value") for e in svc["template"]["containers"][0]["env"]}
    own, legacy = (u.removeprefix("https://") for u in svc["urls"])
    allowed = [HostPattern(h) if "*" in h else h for h in env["ALLOWED_HOSTS"].split(",")]
    assert validate_host(own, allowed) and validate_host(legacy, allowed)
    assert env["CSRF_TRUSTED_ORIGINS"] == f"https://{own}"
    assert engine.up([step]).results[0].first.action is Action.NOOP
