"""Deploy on push (docs/ci.md), two ways; either runs `djdeploy up` itself, so a push deploys
with the same steps, lease and output as a laptop.

- `djdeploy ci github-actions`: a GitHub Actions workflow file, keyless (Workload Identity
  Federation), and the gcloud commands that create its identity. No API call.
- `djdeploy ci setup` / `ci remove`: a Cloud Build trigger on the repository's pushes whose
  build runs djdeploy as a dedicated deployer service account. Observe, then create, replace or
  leave alone (and say why), like a step; not a step of `up`'s graph, since the trigger is the
  project's CI, not part of the tenant's deployment.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from deployer.errors import CloudError, ConfigError, Conflict, DeployError, NotOurs
from deployer.gcp import policy
from deployer.steps.iam import PROPAGATION_ATTEMPTS, sa_not_visible

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud

#: the roles the deploying identity needs on the project (docs/real-google-cloud.md explains
#: each; tests/test_ci.py keeps that table and this list the same)
DEPLOYER_ROLES: tuple[str, ...] = (
    "roles/serviceusage.serviceUsageAdmin",
    "roles/run.admin",
    "roles/cloudsql.admin",
    "roles/secretmanager.admin",
    "roles/storage.admin",
    "roles/artifactregistry.admin",
    "roles/cloudbuild.builds.editor",
    "roles/iam.serviceAccountAdmin",
    "roles/iam.serviceAccountUser",
    "roles/resourcemanager.projectIamAdmin",
)
SCHEDULER_ROLE = "roles/cloudscheduler.admin"  # with [[cron]] entries
MONITORING_ROLE = "roles/monitoring.editor"  # with [monitoring] enabled
REDIS_ROLE = "roles/redis.admin"  # with [worker] broker = "redis"
#: the documented roles no default deployment needs (`djdeploy logs` reads with logging.viewer)
OPTIONAL_ROLES: tuple[str, ...] = (
    SCHEDULER_ROLE,
    "roles/logging.viewer",
    MONITORING_ROLE,
    REDIS_ROLE,
)
#: what a Cloud Build trigger's build needs besides: writing its own logs
LOG_WRITER = "roles/logging.logWriter"
#: the APIs `ci setup` calls (all enabled by the first `djdeploy up`)
SETUP_APIS = (
    "cloudbuild.googleapis.com",
    "iam.googleapis.com",
    "cloudresourcemanager.googleapis.com",
)
#: on the trigger and its builds: djdeploy's (a trigger under our name without it is not ours)
TAG = "djdeploy"
BUILD_IMAGE = "python:3.12-slim"

#: the CI identity: one per project (its roles are project-wide whatever the tenant)
DEPLOYER_SA_ID = "djdeploy-deployer"
POOL_ID = "djdeploy"
PROVIDER_ID = "github"
#: the GitHub repository variable the workflow reads the provider's full name from (it holds the
#: project number, which only an API call or gcloud knows)
PROVIDER_VARIABLE = "DJDEPLOY_WIF_PROVIDER"
DEFAULT_PATH = Path(".github/workflows/djdeploy.yml")
_REPO_RE = re.compile(r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}$")
_BRANCH_RE = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")


def check_source(repository: str, branch: str) -> None:
    """What a push comes from, checked before anything else: one line naming the fix."""
    if not _REPO_RE.match(repository):
        raise ConfigError(f"--github {repository!r}: give the GitHub repository as OWNER/REPO")
    if not _BRANCH_RE.match(branch) or ".." in branch:
        raise ConfigError(f"--branch {branch!r}: give a branch name, e.g. main")


@dataclass(frozen=True)
class Pipeline:
    """Where a push deploys: the repository and branch, the tenant, project and region."""

    tenant: str
    project: str
    region: str
    repository: str  # OWNER/REPO
    branch: str = "main"
    extra_roles: tuple[str, ...] = ()  # config_roles: what the configuration needs besides

    def __post_init__(self) -> None:
        check_source(self.repository, self.branch)

    @property
    def roles(self) -> tuple[str, ...]:
        """The roles the deployer account needs on the project for this configuration."""
        return (*DEPLOYER_ROLES, *self.extra_roles)

    @property
    def deployer_email(self) -> str:
        return f"{DEPLOYER_SA_ID}@{self.project}.iam.gserviceaccount.com"

    @property
    def up_command(self) -> str:
        flags = {"--tenant": self.tenant, "--project": self.project, "--region": self.region}
        return shlex.join(["djdeploy", "up", *(x for pair in flags.items() for x in pair)])


def config_roles(config: Config) -> tuple[str, ...]:
    """The roles beyond DEPLOYER_ROLES that ``config`` needs: Cloud Scheduler's for [[cron]]
    entries, Cloud Monitoring's for [monitoring], Memorystore's for a Redis broker."""
    return (
        (SCHEDULER_ROLE,) * bool(config.cron)
        + (MONITORING_ROLE,) * config.monitoring.enabled
        + (REDIS_ROLE,) * config.redis_broker
    )


def workflow(pipeline: Pipeline, *, version: str) -> str:
    """The workflow file: on a push to the branch, authenticate through Workload Identity
    Federation (no key), install djdeploy ``version`` (the one writing it), run `djdeploy up`.
    Pushes queue per tenant (`concurrency`, never cancelled: a cancelled run would leave its
    lease to expire)."""
    p = pipeline
    return f"""\
# Written by `djdeploy ci github-actions` (docs/ci.md): deploys tenant {p.tenant} to project
# {p.project} on every push to {p.branch}, as {p.deployer_email},
# through Workload Identity Federation (no service account key).
name: djdeploy {p.tenant}

on:
  push:
    branches: [{_quoted(p.branch)}]
  workflow_dispatch:

permissions:
  contents: read
  id-token: write

# one deployment of the tenant at a time: a later push waits, and of several waiting only the
# newest runs (djdeploy's lease on the tenant also protects)
concurrency:
  group: djdeploy-{p.project}-{p.tenant}
  cancel-in-progress: false

jobs:
  deploy:
    runs-on: ubuntu-latest
    timeout-minutes: 60
    steps:
      - uses: actions/checkout@v4
      - uses: google-github-actions/auth@v2
        with:
          workload_identity_provider: ${{{{ vars.{PROVIDER_VARIABLE} }}}}
          service_account: {p.deployer_email}
      - uses: actions/setup-python@v5
        with:
          python-version: "3.12"
      - run: pip install djdeploy=={version}
      - run: {p.up_command}
"""


def _quoted(text: str) -> str:
    return '"' + text + '"'


def setup_commands(pipeline: Pipeline) -> list[str]:
    """The gcloud (and gh) commands that create the deployer service account with the roles
    djdeploy needs, a workload identity pool and a GitHub OIDC provider that only this
    repository's pushes to the branch satisfy, and let that repository act as the account."""
    p = pipeline
    project = f"--project={p.project}"
    pool = f"projects/$PROJECT_NUMBER/locations/global/workloadIdentityPools/{POOL_ID}"
    condition = f"assertion.repository=='{p.repository}' && assertion.ref=='refs/heads/{p.branch}'"
    mapping = (
        "google.subject=assertion.sub,attribute.repository=assertion.repository,"
        "attribute.ref=assertion.ref"
    )
    roles = " ".join(p.roles)
    return [
        f"PROJECT_NUMBER=$(gcloud projects describe {p.project} --format='value(projectNumber)')",
        f"gcloud iam service-accounts create {DEPLOYER_SA_ID} {project} "
        "--display-name='djdeploy deployer (CI)'",
        f"for role in {roles}; do gcloud projects add-iam-policy-binding {p.project} "
        f"--member=serviceAccount:{p.deployer_email} --role=$role --condition=None; done",
        f"gcloud iam workload-identity-pools create {POOL_ID} {project} --location=global "
        "--display-name='djdeploy'",
        f"gcloud iam workload-identity-pools providers create-oidc {PROVIDER_ID} {project} "
        f"--location=global --workload-identity-pool={POOL_ID} "
        "--issuer-uri=https://token.actions.githubusercontent.com "
        f'--attribute-mapping={mapping} --attribute-condition="{condition}"',
        f"gcloud iam service-accounts add-iam-policy-binding {p.deployer_email} {project} "
        "--role=roles/iam.workloadIdentityUser "
        f"--member=principalSet://iam.googleapis.com/{pool}/attribute.repository/{p.repository}",
        f"gh variable set {PROVIDER_VARIABLE} --repo {p.repository} "
        f"--body {pool}/providers/{PROVIDER_ID}",
    ]


@dataclass(frozen=True)
class Written:
    path: Path
    changed: bool  # False: the file already had this content


def write_workflow(pipeline: Pipeline, path: Path, *, version: str, force: bool = False) -> Written:
    """Write the workflow to ``path``; an existing file with other content is kept unless
    ``force`` (it may be the user's own edit)."""
    text = workflow(pipeline, version=version)
    try:
        old = path.read_text()
    except FileNotFoundError:
        old = None
    except OSError as exc:
        raise ConfigError(f"cannot read {path} ({exc.strerror}): pass another --path") from None
    if old == text:
        return Written(path, changed=False)
    if old is not None and not force:
        raise ConfigError(f"{path} exists with other content: --force overwrites it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        raise ConfigError(f"cannot write {path} ({exc.strerror}): pass another --path") from None
    return Written(path, changed=True)


def github_repository(cwd: Path) -> str | None:
    """OWNER/REPO of the `origin` remote in ``cwd``'s .git/config when it is on GitHub."""
    try:
        text = (cwd / ".git" / "config").read_text()
    except OSError:
        return None
    found = re.search(
        r'\[remote "origin"\][^\[]*?url\s*=\s*\S*github\.com[:/]([^/\s]+/[^/\s]+?)(?:\.git)?\s',
        text + "\n",
    )
    return found.group(1) if found else None


# -- the Cloud Build trigger (`djdeploy ci setup`, `ci remove`) --------------------------------


def trigger_name(tenant: str) -> str:
    return f"djdeploy-{tenant}"


def trigger_body(pipeline: Pipeline, *, version: str) -> dict[str, Any]:
    """The trigger: on a push to the branch, one step in a Python image installs djdeploy
    ``version`` and runs `djdeploy up` as the deployer account, logging to Cloud Logging only
    (what a build with its own service account must choose)."""
    p = pipeline
    owner, name = p.repository.split("/")
    tags = [TAG, f"djdeploy-tenant-{p.tenant}"]
    script = f"pip install --quiet djdeploy=={version} && {p.up_command}"
    return {
        "name": trigger_name(p.tenant),
        "description": f"djdeploy: deploys tenant {p.tenant} on every push to {p.branch}",
        "tags": tags,
        "github": {"owner": owner, "name": name, "push": {"branch": f"^{re.escape(p.branch)}$"}},
        "serviceAccount": f"projects/{p.project}/serviceAccounts/{p.deployer_email}",
        "build": {
            "steps": [{"name": BUILD_IMAGE, "entrypoint": "bash", "args": ["-c", script]}],
            "timeout": "3600s",
            "options": {"logging": "CLOUD_LOGGING_ONLY"},
            "tags": tags,
        },
    }


@dataclass(frozen=True)
class Done:
    """One thing `ci setup` or `ci remove` looked at: what it did (created, updated, deleted,
    unchanged) and why."""

    resource: str
    action: Literal["created", "updated", "deleted", "unchanged"]
    reason: str


def connect_url(pipeline: Pipeline) -> str:
    return (
        f"https://console.cloud.google.com/cloud-build/triggers;region={pipeline.region}"
        f"/connect?project={pipeline.project}"
    )


def setup(cloud: Cloud, pipeline: Pipeline, *, version: str) -> list[Done]:
    """The deployer account, its roles on the project, and the trigger; each created or
    brought in line only when it differs. Refused before any write when the APIs are off."""
    p = pipeline
    off = sorted(set(SETUP_APIS) - cloud.services.enabled(SETUP_APIS))
    if off:
        raise ConfigError(
            f"{', '.join(off)} not enabled in project {p.project}: "
            f"run `djdeploy up --tenant {p.tenant}` first (it enables them)"
        )
    return [_account(cloud, p), _roles(cloud, p), _trigger(cloud, p, version=version)]


def _account(cloud: Cloud, p: Pipeline) -> Done:
    what = f"service account {p.deployer_email}"
    if cloud.iam.get_service_account(p.deployer_email) is not None:
        return Done(what, "unchanged", "exists")
    try:
        cloud.iam.create_service_account(
            DEPLOYER_SA_ID,
            "djdeploy deployer (CI)",
            "djdeploy: deploys on push (djdeploy ci setup, docs/ci.md)",
        )
    except Conflict:
        return Done(what, "unchanged", "exists (not yet visible)")
    return Done(what, "created", "the identity the trigger's builds deploy as")


def _roles(cloud: Cloud, p: Pipeline) -> Done:
    member = f"serviceAccount:{p.deployer_email}"
    roles = (*p.roles, LOG_WRITER)
    wrote = policy.ensure_bindings(
        cloud,
        get=cloud.projects.get_iam_policy,
        set=cloud.projects.set_iam_policy,
        wanted={role: {member} for role in roles},
        key=f"{p.project}/project",
        retry_on=(sa_not_visible,),
        attempts=PROPAGATION_ATTEMPTS,
    )
    what = f"{len(roles)} project roles of {p.deployer_email}"
    return Done(what, "updated" if wrote else "unchanged", "granted" if wrote else "all held")


def _trigger(cloud: Cloud, p: Pipeline, *, version: str) -> Done:
    name = trigger_name(p.tenant)
    what = f"trigger {name} ({p.repository} {p.branch} -> tenant {p.tenant})"
    want = trigger_body(p, version=version)
    found = cloud.build.get_trigger(name)
    if found is not None and TAG not in (found.get("tags") or []):
        raise NotOurs(f"Cloud Build trigger {name} exists without the tag {TAG!r}: not djdeploy's")
    if found is not None and _within(want, found):
        return Done(what, "unchanged", "exists and matches")
    try:
        if found is None:
            cloud.build.create_trigger(want)
            return Done(what, "created", "deploys on push")
        cloud.build.replace_trigger(found["id"], want)
    except CloudError as exc:
        if exc.status == "FAILED_PRECONDITION" and "epository" in str(exc):
            raise DeployError(
                f"{p.repository} is not connected to Cloud Build in project {p.project}: connect "
                f"it once in the console ({connect_url(p)}), then run this again"
            ) from None
        raise
    changed = sorted(k for k in want if not _within(want[k], found.get(k)))
    return Done(what, "updated", f"{', '.join(changed)} differed")


def _within(want: Any, found: Any) -> bool:
    """``want`` is in ``found``: what we set, leaving the defaults the server adds."""
    if isinstance(want, dict):
        return isinstance(found, dict) and all(_within(v, found.get(k)) for k, v in want.items())
    if isinstance(want, list):
        return (
            isinstance(found, list)
            and len(want) == len(found)
            and all(_within(w, f) for w, f in zip(want, found, strict=True))
        )
    return bool(want == found)


def remove(cloud: Cloud, tenant: str, project: str) -> list[Done]:
    """Delete the tenant's trigger (ours only); the deployer account stays: every tenant's
    trigger and the GitHub Actions workflow deploy as it."""
    name = trigger_name(tenant)
    found = cloud.build.get_trigger(name)
    if found is None:
        return [Done(f"trigger {name}", "unchanged", "none to delete")]
    if TAG not in (found.get("tags") or []):
        raise NotOurs(f"Cloud Build trigger {name} exists without the tag {TAG!r}: not djdeploy's")
    cloud.build.delete_trigger(found["id"])
    return [Done(f"trigger {name}", "deleted", f"{DEPLOYER_SA_ID} kept: the project's CI identity")]
