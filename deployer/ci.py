"""Deploy on push through GitHub Actions (docs/ci.md): `djdeploy ci github-actions` writes a
workflow file that runs `djdeploy up` itself, keyless (Workload Identity Federation), and prints
the gcloud commands that create its identity. No API call.

The other way, a Cloud Build trigger, is configuration ([ci]) and steps of `up`
(steps/ci.py), whose roles for the deploying identity this module shares.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from deployer.config.rules import BRANCH_RE, GITHUB_REPO_RE
from deployer.errors import ConfigError

# the deploying identity's roles, shared with the [ci] steps
from deployer.steps.ci import DEPLOYER_ROLES as DEPLOYER_ROLES
from deployer.steps.ci import MONITORING_ROLE as MONITORING_ROLE
from deployer.steps.ci import OPTIONAL_ROLES as OPTIONAL_ROLES
from deployer.steps.ci import REDIS_ROLE as REDIS_ROLE
from deployer.steps.ci import SCHEDULER_ROLE as SCHEDULER_ROLE
from deployer.steps.ci import config_in_checkout as config_in_checkout
from deployer.steps.ci import config_roles as config_roles
from deployer.steps.ci import up_command

#: the CI identity: one per project (its roles are project-wide whatever the tenant)
DEPLOYER_SA_ID = "djdeploy-deployer"
POOL_ID = "djdeploy"
PROVIDER_ID = "github"
#: the GitHub repository variable the workflow reads the provider's full name from (it holds the
#: project number, which only an API call or gcloud knows)
PROVIDER_VARIABLE = "DJDEPLOY_WIF_PROVIDER"
DEFAULT_PATH = Path(".github/workflows/djdeploy.yml")


def check_source(repository: str, branch: str) -> None:
    """What a push comes from, checked before anything else: one line naming the fix."""
    if not GITHUB_REPO_RE.match(repository):
        raise ConfigError(f"--github {repository!r}: give the GitHub repository as OWNER/REPO")
    if not BRANCH_RE.match(branch) or ".." in branch:
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
    config: str | None = None  # config_in_checkout: the --config a push's `up` needs, if any

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
        return up_command(self.tenant, self.project, self.region, config=self.config)


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
