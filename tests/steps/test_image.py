"""The image step: diff table, then source -> Cloud Build -> Artifact Registry on the emulator."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from deployer.archive import build_archive, container_dir, default_source
from deployer.config import BuildConfig, Config, load_config
from deployer.emulator import serviceusage
from deployer.emulator.policies import SA_KIND
from deployer.emulator.testing import storage_client
from deployer.engine import Engine, Options
from deployer.gcp.clients import ClientFactory
from deployer.gcp.cloud import Cloud
from deployer.steps.base import Action, Broken, Change
from deployer.steps.image import RUNTIME_APT_DEFAULT, Image, build_args, image_tag
from deployer.steps.registry import Registry
from tests.contract import check_transcript

pytestmark = pytest.mark.virtual_clock  # the engine and the emulator share emulator.clock

PROJECT = "image-proj"
REGION = "europe-west1"


def _config(source: Path | None = None) -> Config:
    return Config(tenant="demo", project=PROJECT, region=REGION, source=source)


# -- diff table ----------------------------------------------------------------------------------

CONFIG = _config()
STEP = Image(CONFIG)
LOG = "https://console.cloud.google.com/cloud-build/builds;region=europe-west1/b1?project=1"


@pytest.mark.parametrize(
    ("observed", "action", "failure", "reason"),
    [
        (None, Action.CREATE, "", "no image"),
        ({"exists": True}, Action.NOOP, "", "is built (in the registry)"),
        ({"exists": False, "build": {"id": "b1", "status": "QUEUED"}}, Action.WAIT, "", "queued"),
        ({"exists": False, "build": {"id": "b1", "status": "WORKING"}}, Action.WAIT, "", "working"),
        (
            {"exists": False, "build": {"id": "b1", "status": "SUCCESS"}},
            Action.CREATE,
            "",
            "not in the registry",
        ),
        (
            {
                "exists": False,
                "build": {
                    "id": "b1",
                    "status": "FAILURE",
                    "statusDetail": "step exited with non-zero status: 1",
                    "logUrl": LOG,
                },
            },
            Action.CREATE,
            f"build b1 FAILURE: step exited with non-zero status: 1; logs: {LOG}",
            "ended FAILURE",
        ),
        (
            {"exists": False, "build": {"id": "b1", "status": "TIMEOUT", "logUrl": LOG}},
            Action.CREATE,
            f"build b1 TIMEOUT; logs: {LOG}",
            "ended TIMEOUT",
        ),
        (
            {"exists": False, "build": {"id": "b1", "status": "INTERNAL_ERROR"}},
            Action.CREATE,
            "build b1 INTERNAL_ERROR",
            "ended INTERNAL_ERROR",
        ),
    ],
)
def test_diff(observed: Any, action: Action, failure: str, reason: str) -> None:
    change = STEP.diff(observed)
    assert change.action is action
    # a failed build is Broken: built again once per up, then the step fails
    assert str(change.failure or "") == failure
    assert isinstance(change.failure, Broken) if failure else change.failure is None
    assert reason in change.reason
    assert change.info["image"] == STEP.image


def test_image_uri_known_before_any_call() -> None:
    archive = build_archive(default_source(), container_dir())
    step = Image(CONFIG, archive)
    assert step.image == (f"{REGION}-docker.pkg.dev/{PROJECT}/demo-django/django:{archive.tag}")
    assert Image(CONFIG).image == step.image  # built from the bundled sample
    assert step.name == "image" and step.needs == ("iam-build",)


def test_build_body() -> None:
    body = STEP.build_body()
    names = CONFIG.names
    assert body["images"] == [STEP.image]
    assert body["tags"] == [STEP.tag, "djdeploy", "demo"]
    assert body["serviceAccount"] == f"projects/{PROJECT}/serviceAccounts/{names.build_sa_email}"
    assert body["options"] == {"logging": "CLOUD_LOGGING_ONLY"}
    assert body["source"]["storageSource"] == {
        "bucket": names.staging_bucket,
        "object": f"sources/{STEP.tag}.tar.gz",
    }
    assert body["steps"][0]["args"] == [
        "build", "-f", ".djdeploy/Dockerfile", "-t", STEP.image, ".",
    ]  # fmt: skip


# -- build args ----------------------------------------------------------------------------------

DOCKERFILE = Path(__file__).resolve().parents[2] / "container" / "Dockerfile"
ARCHIVE = build_archive(default_source(), container_dir())


def _with(**kw: Any) -> Config:
    return Config(tenant="demo", project=PROJECT, region=REGION, **kw)


def test_no_build_args_by_default_and_the_tag_is_the_archives() -> None:
    step = Image(CONFIG, ARCHIVE)
    assert step.build_args == {}
    assert step.tag == ARCHIVE.tag
    assert "--build-arg" not in step.build_body()["steps"][0]["args"]


def test_build_args_in_the_build_step() -> None:
    config = _with(
        settings_module="mysite.settings.prod",
        build=BuildConfig(["libgdal-dev", "libproj-dev"], runtime_apt_packages=["libgdal32"]),
    )
    step = Image(config, ARCHIVE)
    body = step.build_body()
    assert body["steps"][0]["args"] == [
        "build", "-f", ".djdeploy/Dockerfile",
        "--build-arg", "BUILD_APT_PACKAGES=libgdal-dev libproj-dev",
        "--build-arg", "DJANGO_PROJECT_SETTINGS=mysite.settings.prod",
        "--build-arg", "RUNTIME_APT_PACKAGES=libpq5 libgdal32",
        "-t", step.image, ".",
    ]  # fmt: skip
    assert body["images"] == [step.image] and body["tags"][0] == step.tag
    # the archive is the same: its staging object is shared, the image tag is not
    assert body["source"]["storageSource"]["object"] == ARCHIVE.object_name
    assert step.tag != ARCHIVE.tag and step.tag.startswith("src-") and len(step.tag) == 20


def test_runtime_packages_keep_the_dockerfile_default_once() -> None:
    config = _with(build=BuildConfig(runtime_apt_packages=["libgdal32", "libpq5"]))
    assert build_args(config) == {"RUNTIME_APT_PACKAGES": "libpq5 libgdal32"}


TAG_CONFIGS = [
    CONFIG,
    _with(settings_module="mysite.settings"),
    _with(settings_module="mysite.settings_prod"),
    _with(build=BuildConfig(["libgdal-dev"])),
    _with(build=BuildConfig(["libgdal-dev", "libproj-dev"])),
    _with(build=BuildConfig(runtime_apt_packages=["libgdal32"])),
    _with(build=BuildConfig(["libgdal32"])),  # the same package for the other stage
]


def test_every_build_arg_value_is_its_own_tag() -> None:
    tags = [Image(c, ARCHIVE).tag for c in TAG_CONFIGS]
    assert len(set(tags)) == len(TAG_CONFIGS)
    for config, tag in zip(TAG_CONFIGS, tags, strict=True):
        # stable: the same config gives the same tag, whoever builds it
        again = dataclasses.replace(config)
        assert Image(again, ARCHIVE).tag == tag == image_tag(ARCHIVE.digest, build_args(config))


def _dockerfile_args() -> dict[str, str]:
    """ARG name -> default (unquoted) declared in container/Dockerfile."""
    found: dict[str, str] = {}
    for m in re.finditer(r"(?m)^ARG ([A-Z_][A-Z0-9_]*)(?:=(.*))?$", DOCKERFILE.read_text()):
        found[m.group(1)] = (m.group(2) or "").strip().strip('"')
    return found


def test_apt_build_args_are_the_dockerfiles() -> None:
    declared = _dockerfile_args()
    assert declared["BUILD_APT_PACKAGES"] == ""
    # build.runtime_apt_packages adds to the default: the deployer's copy of it must agree
    assert declared["RUNTIME_APT_PACKAGES"].split() == list(RUNTIME_APT_DEFAULT)


def test_settings_build_arg_is_declared_by_the_dockerfile() -> None:
    if "DJANGO_PROJECT_SETTINGS" not in _dockerfile_args():
        pytest.skip("container/Dockerfile does not declare ARG DJANGO_PROJECT_SETTINGS yet")
    config = _with(settings_module="mysite.settings")
    assert set(build_args(config)) <= set(_dockerfile_args())


# -- on the emulator -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _GrantWriter:
    """Stands in for iam-build: roles/artifactregistry.writer for the build SA on the repo."""

    config: Config
    name: str = "iam-build"
    needs: tuple[str, ...] = ("registry",)

    def observe(self, cloud: Cloud) -> Any:
        policy = cloud.registry.get_iam_policy(self.config.names.registry)
        member = f"serviceAccount:{self.config.names.build_sa_email}"
        for b in policy["bindings"]:
            if b["role"] == "roles/artifactregistry.writer" and member in b["members"]:
                return policy
        return None

    def diff(self, observed: Any) -> Change:
        action = Action.NOOP if observed else Action.UPDATE
        return Change(self.name, "repo iam", action, "writer")

    def apply(self, cloud: Cloud, change: Change) -> None:
        repo = self.config.names.registry
        policy = cloud.registry.get_iam_policy(repo)
        member = f"serviceAccount:{self.config.names.build_sa_email}"
        policy["bindings"].append({"role": "roles/artifactregistry.writer", "members": [member]})
        cloud.registry.set_iam_policy(repo, policy)

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        return Change(self.name, "repo iam", Action.NOOP, "with the repository")


def _seed(emulator: Any, config: Config) -> None:
    """What apis, service-accounts and sources-bucket would have made."""
    emu = emulator.emu
    for service in ("cloudbuild.googleapis.com", "artifactregistry.googleapis.com"):
        serviceusage.set_enabled(emu, PROJECT, service)
    email = config.names.build_sa_email
    emu.store.put(SA_KIND, email, {"email": email, "_visibleAt": 0.0})
    client = storage_client(emulator.url, PROJECT)
    bucket = client.bucket(config.names.staging_bucket)
    bucket.iam_configuration.uniform_bucket_level_access_enabled = True
    client.create_bucket(bucket, location=REGION)


def _steps(config: Config, archive: Any = None) -> list[Any]:
    registry = dataclasses.replace(Registry(config), needs=())
    return [registry, _GrantWriter(config), Image(config, archive)]


def _engine(emulator: Any, *, request_timeout: float = 60.0) -> Engine:
    clients = ClientFactory(endpoint=emulator.url, project=PROJECT, request_timeout=request_timeout)
    cloud = Cloud(PROJECT, REGION, clients, clock=emulator.clock)
    return Engine(cloud, options=Options.scaled(0.001))


def _mutations(entries: list[dict[str, Any]]) -> list[str]:
    return [
        f"{e['method']} {e['path']}"
        for e in entries
        if e["method"] != "GET" and not e["path"].endswith(":getIamPolicy")
    ]


def _builds(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e["method"] == "POST" and e["path"].endswith("/builds")]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "mysite"
    shutil.copytree(default_source(), dest)
    return dest


def test_up_from_empty_then_noop_then_new_source(emulator: Any, project: Path) -> None:
    config = _config(project)
    _seed(emulator, config)
    engine = _engine(emulator)
    step = Image(config)

    result = engine.up(_steps(config))
    assert result.ok, [r.error for r in result.results]
    image = next(r for r in result.results if r.step == "image")
    assert image.first is not None and image.first.action is Action.CREATE
    assert image.last is not None and image.last.action is Action.NOOP
    assert emulator.emu.store.get("artifactregistry.tag", step.image) is not None
    entries = emulator.emu.transcript.entries()
    assert len(_builds(entries)) == 1
    uploads = [e for e in entries if e["path"].startswith("/upload/storage/")]
    assert len(uploads) == 1
    assert check_transcript(entries) == []
    build = _builds(entries)[0]["body"]
    assert build["tags"] == [step.tag, "djdeploy", "demo"]

    # a second up: reads only, no build
    emulator.emu.transcript.clear()
    result = engine.up(_steps(config))
    assert result.ok
    assert all(r.first is not None and r.first.action is Action.NOOP for r in result.results)
    assert "is built (in the registry)" in result.results[-1].first.reason  # type: ignore[union-attr]
    assert _mutations(emulator.emu.transcript.entries()) == []

    # one changed source file: a new tag, one new build
    (project / "djsample" / "settings.py").write_text(
        (project / "djsample" / "settings.py").read_text() + "\n# changed\n"
    )
    changed = Image(config)
    assert changed.tag != step.tag
    emulator.emu.transcript.clear()
    result = engine.up(_steps(config))
    assert result.ok, [r.error for r in result.results]
    entries = emulator.emu.transcript.entries()
    assert len(_builds(entries)) == 1
    assert _builds(entries)[0]["body"]["images"] == [changed.image]
    assert emulator.emu.store.get("artifactregistry.tag", changed.image) is not None
    assert check_transcript(entries) == []


def test_a_changed_build_arg_builds_a_new_image(emulator: Any, project: Path) -> None:
    config = _config(project)
    _seed(emulator, config)
    engine = _engine(emulator)
    assert engine.up(_steps(config)).ok
    first = Image(config)

    emulator.emu.transcript.clear()
    configured = dataclasses.replace(config, settings_module="djsample.settings")
    result = engine.up(_steps(configured))
    assert result.ok, [r.error for r in result.results]
    entries = emulator.emu.transcript.entries()
    builds = _builds(entries)
    step = Image(configured)
    assert step.tag != first.tag and len(builds) == 1
    assert builds[0]["body"]["images"] == [step.image]
    assert "DJANGO_PROJECT_SETTINGS=djsample.settings" in builds[0]["body"]["steps"][0]["args"]
    # the same source: the archive already in the staging bucket is not uploaded again
    assert not [e for e in entries if e["path"].startswith("/upload/storage/")]
    assert emulator.emu.store.get("artifactregistry.tag", step.image) is not None
    assert check_transcript(entries) == []

    emulator.emu.transcript.clear()
    assert engine.up(_steps(configured)).ok
    assert _mutations(emulator.emu.transcript.entries()) == []


def test_failed_build_shows_detail_and_logs_then_next_up_builds(emulator: Any) -> None:
    config = _config()
    _seed(emulator, config)
    engine = _engine(emulator)
    step = Image(config)
    emulator.emu.outcomes.add("build", step.tag, "step exited with non-zero status: 1")

    result = engine.up(_steps(config))
    assert not result.ok
    image = next(r for r in result.results if r.step == "image")
    assert "step exited with non-zero status: 1" in image.error
    assert "Build step failure" in image.error
    assert "logs: https://console.cloud.google.com/cloud-build/builds;region=europe-west1/" in (
        image.error
    )

    # status/plan shows the failure
    change = engine.plan(_steps(config))[-1]
    assert change.action is Action.CREATE and "FAILURE" in str(change.failure)

    result = engine.up(_steps(config))
    assert result.ok, [r.error for r in result.results]
    assert len(_builds(emulator.emu.transcript.entries())) == 2
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_faults_are_ridden_out(emulator: Any) -> None:
    config = _config()
    _seed(emulator, config)
    faults = emulator.emu.faults
    faults.add(method="POST", path=r"/builds$", code=503, times=2)
    faults.add(method="GET", path=r"/packages/.*/tags/", code=429, retry_after=1, times=1)
    faults.add(method="POST", path=r"/repositories$", code=503, times=1)
    result = _engine(emulator).up(_steps(config))
    assert result.ok, [r.error for r in result.results]
    entries = emulator.emu.transcript.entries()
    assert [e["status"] for e in _builds(entries)] == [503, 503, 200]
    assert check_transcript(entries) == []


def test_dropped_build_response_still_converges(emulator: Any) -> None:
    """The create is applied, its answer lost: it is never sent again (a create-build is not
    safe to repeat); the step finds the build by its tags and waits for it. One build. (The
    wait for the request's deadline must fit the step's at this test's time scale.)"""
    config = _config()
    _seed(emulator, config)
    emulator.emu.faults.add(method="POST", path=r"/builds$", action="drop", times=1)
    result = _engine(emulator, request_timeout=5.0).up(_steps(config))
    assert result.ok, [r.error for r in result.results]
    assert emulator.emu.store.get("artifactregistry.tag", Image(config).image) is not None
    creates = [e for e in emulator.emu.transcript.entries() if e["path"].endswith("/builds")]
    assert [(e["method"], e["status"]) for e in creates if e["method"] == "POST"] == [
        ("POST", None)
    ]


def test_build_without_repository_fails_with_push_error(emulator: Any) -> None:
    config = _config()
    _seed(emulator, config)
    step: Any = dataclasses.replace(Image(config), needs=())
    result = _engine(emulator).up([step])
    assert not result.ok
    assert 'Repository "demo-django" not found' in result.results[0].error


def test_destroy_twice(emulator: Any) -> None:
    config = _config()
    _seed(emulator, config)
    engine = _engine(emulator)
    assert engine.up(_steps(config)).ok
    for _ in range(2):
        changes = engine.destroy(_steps(config), delete_data=False)
        by_step = {c.step: c for c in changes}
        assert by_step["image"].action is Action.NOOP
    assert emulator.emu.store.get("artifactregistry.tag", Image(config).image) is None
    # up again rebuilds (the registry went with its images)
    emulator.emu.transcript.clear()
    emulator.clock.advance(0.01)
    assert engine.up(_steps(config)).ok
    assert len(_builds(emulator.emu.transcript.entries())) == 1
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_another_tenants_build_of_the_same_source_is_not_ours(emulator: Any) -> None:
    """Tenants deploying the same source share the source tag: the build of another tenant
    (or of another app of ours) is neither waited on nor reported as our failure."""
    config = _config()
    _seed(emulator, config)
    ours = Image(config)
    cloud = _engine(emulator).cloud
    bucket = config.names.staging_bucket  # shared by every tenant: one upload of the source
    cloud.storage.upload(
        bucket, ours.archive.object_name, ours.archive.data, content_type="application/gzip"
    )
    for other_config in (
        Config(tenant="other", project=PROJECT, region=REGION),
        Config(tenant="demo", app="blog", project=PROJECT, region=REGION),
    ):
        other = Image(other_config)
        assert other.tag == ours.tag and other.image != ours.image
        email = other_config.names.build_sa_email
        emulator.emu.store.put(SA_KIND, email, {"email": email, "_visibleAt": 0.0})
        emulator.emu.outcomes.add("build", other.tag, "their step exited with status 1")
        cloud.build.create_build(other.build_body())

    listed = cloud.build.list_builds(f'tags="{ours.tag}"')
    assert len(listed) == 2  # both there, under our source tag
    change = ours.diff(ours.observe(cloud))
    assert change.action is Action.CREATE
    assert change.failure is None and "build" not in change.info


@pytest.mark.parametrize(
    ("where", "text", "flags"),
    [
        (
            "deploy/prod.toml",
            'source = ".."\n[service]\nmemory = "{memory}"\n',
            {"config": "deploy/prod.toml"},
        ),
        (
            "pyproject.toml",
            '[project]\nname = "mysite"\ndependencies = ["django"]\n\n[tool.djdeploy]\n'
            'source = "."\n\n[tool.djdeploy.service]\nmemory = "{memory}"\n',
            {},
        ),
    ],
    ids=["--config", "pyproject"],
)
def test_a_deploy_only_edit_of_the_config_in_the_project_builds_nothing(
    emulator: Any, project: Path, where: str, text: str, flags: dict[str, str]
) -> None:
    """--config deploy/prod.toml, or [tool.djdeploy] of the project's pyproject.toml: the
    settings are the deployer's, not the image's, so a new memory size is the same image: no
    build (and so no migrate)."""
    config_file = project / where
    config_file.parent.mkdir(exist_ok=True)

    def load(memory: str) -> Config:
        config_file.write_text(text.format(memory=memory))
        given = {**flags, "project": PROJECT, "region": REGION}
        config = load_config(tenant="demo", cwd=project, environ={}, flags=given)
        assert config.config_file == config_file and config.service.memory == memory
        return config

    config = load("1Gi")
    _seed(emulator, config)
    engine = _engine(emulator)
    assert engine.up(_steps(config)).ok
    built = Image(config).image
    assert emulator.emu.store.get("artifactregistry.tag", built) is not None

    edited = load("2Gi")
    assert Image(edited).image == built
    emulator.emu.transcript.clear()
    result = engine.up(_steps(edited))
    assert result.ok, [r.error for r in result.results]
    image = next(r for r in result.results if r.step == "image").first
    assert image is not None and image.action is Action.NOOP, image
    assert _builds(emulator.emu.transcript.entries()) == []


def test_lazy_archive_plan_status_destroy_never_compress(monkeypatch: Any) -> None:
    """The image URI needs the digest only: building the steps (plan, status, destroy) reads
    the files but never gzips them; apply's upload does."""
    import deployer.archive as archive_module
    from deployer.steps import build_steps

    def no_gzip(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("gzip used before an upload")

    monkeypatch.setattr(archive_module.gzip, "GzipFile", no_gzip)
    steps = build_steps(CONFIG)
    image = next(s for s in steps if s.name == "image")
    assert image.image == STEP.image
    monkeypatch.undo()
    assert image.archive.data == build_archive(default_source(), container_dir()).data


def test_a_build_finishing_between_the_reads_is_done_not_rebuilt(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race of one uninterrupted up: observe reads the tag (absent: the build runs), the
    build finishes, then observe lists the builds (SUCCESS). That build pushed the image: it is
    done, never a reason to build again. No timing window: the build would not end by itself
    within the test; it completes inside the list call, before the list is read."""
    config = _config()
    _seed(emulator, config)
    emu = emulator.emu
    engine = _engine(emulator)
    # the build outlasts settle_seconds, as a real one does (minutes against 30 s): the engine
    # would apply the same CREATE again as soon as the diff asked for it
    engine.options = dataclasses.replace(engine.options, settle_seconds=0.0)
    assert engine.up(_steps(config)[:2]).ok  # the registry and its grant
    emu.latency.set(time_scale=1.0, durations={"build": 1700.0})  # under its 1800 s timeout
    list_builds = engine.cloud.build.list_builds
    completed: list[str] = []

    def finish_then_list(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        for op in emu.ops.running(""):
            if op["completer"] == "cloudbuild.build":
                emu.ops.complete_now(op["id"])
                completed.append(op["id"])
        return list_builds(*args, **kwargs)

    monkeypatch.setattr(engine.cloud.build, "list_builds", finish_then_list)
    emu.transcript.clear()
    result = engine.up(_steps(config))
    assert result.ok, [r.error for r in result.results]
    assert len(completed) == 1  # the race happened: the build finished between the reads
    assert len(_builds(emu.transcript.entries())) == 1
    image = next(r for r in result.results if r.step == "image")
    assert image.last is not None and image.last.action is Action.NOOP
    assert emu.store.get("artifactregistry.tag", Image(config).image) is not None
