"""`djdeploy manage`: one management command as an execution of the tenant's manage job
(docs/manage.md).

The manage job (``<tenant>-<app>-manage``) is its own Cloud Run job, not the migrate job with
overrides: a run of the migrate job carries that job's image label, so a succeeded command would
count as a migration of the image (steps/jobs.py), and a failed one as a failed migration. Its
definition is the serving revision's container (image, env with its pinned secret versions,
volumes, service account, VPC access), so a command runs the code and settings that serve,
also after a rollback; the command itself is the execution's container override (args), so two
commands never race over the job's definition. `up` never runs it; destroy deletes it
(steps/manage.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deployer.errors import ConfigError, DeployError
from deployer.steps import container_env as ce
from deployer.steps.jobs import MAX_RETRIES, TIMEOUT_SECONDS
from deployer.steps.service import pinned_revision

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud

#: on the job and its executions: the revision whose container it runs
REVISION_LABEL = "djdeploy-revision"
#: the revision's template fields a job's task template takes as they are
_TASK_FIELDS = ("serviceAccount", "executionEnvironment", "vpcAccess", "volumes")
_CONTAINER_FIELDS = ("image", "env", "resources", "volumeMounts")

#: commands that need a terminal, and what to do instead ({tenant} filled in)
_INTERACTIVE = {
    "shell": "shell needs a terminal: run code with `djdeploy manage --tenant {tenant} -- "
    "shell -c 'print(1)'`",
    "shell_plus": "shell_plus needs a terminal: run code with `djdeploy manage --tenant "
    "{tenant} -- shell -c 'print(1)'`",
    "dbshell": "dbshell needs a terminal: connect with `gcloud sql connect INSTANCE --user "
    "USER --database DATABASE` instead",
    "createsuperuser": "createsuperuser asks for a password on a terminal: add --noinput "
    "--username NAME --email EMAIL (djdeploy's own superuser is created by migrate)",
    "changepassword": "changepassword asks for the password on a terminal: set it with "
    "`djdeploy manage --tenant {tenant} -- shell -c '...set_password(...)'`",
    "runserver": "runserver is a development server: the Cloud Run service already serves "
    "(`djdeploy up`)",
    "testserver": "testserver is a development server: the Cloud Run service already serves "
    "(`djdeploy up`)",
}
_NOINPUT = ("--noinput", "--no-input")
_CODE = ("-c", "--command")


@dataclass(frozen=True)
class ManageRun:
    """One `manage` command's execution: ``state`` "running" (not waited for), "succeeded" or
    "failed" (``message`` says why); ``revision`` is the one whose container it ran."""

    execution: str
    job: str
    revision: str
    state: str
    message: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "execution": self.execution,
            "job": self.job,
            "revision": self.revision,
            "state": self.state,
            "message": self.message,
        }


def check_args(args: list[str], *, tenant: str) -> None:
    """ConfigError (before any API call) for no command, or one that needs a terminal."""
    if not args:
        raise ConfigError(
            "no management command given: put it after --, e.g. `djdeploy manage --tenant "
            f"{tenant} -- showmigrations`"
        )
    command = args[0]
    hint = _INTERACTIVE.get(command)
    if hint is None:
        return
    rest = args[1:]
    if command == "createsuperuser" and any(a in _NOINPUT for a in rest):
        return
    if command in ("shell", "shell_plus") and any(
        a in _CODE or a.startswith("--command=") for a in rest
    ):
        return
    raise ConfigError(hint.format(tenant=tenant))


def serving_revision(cloud: Cloud, config: Config) -> dict[str, Any]:
    """The revision all the traffic goes to (a rollback's pin, else the latest ready one)."""
    n = config.names
    service = cloud.run.get_service(n.service)
    if service is None:
        raise DeployError(
            f"service {n.service} does not exist: run `djdeploy up --tenant {config.tenant}` "
            "first (a management command runs with the service's image and settings)"
        )
    name = pinned_revision(service) or ce.short(service.get("latestReadyRevision"))
    revision = cloud.run.get_revision(n.service, name) if name else None
    if revision is None:
        raise DeployError(
            f"service {n.service} has no ready revision to take the image and settings from: "
            f"run `djdeploy up --tenant {config.tenant}` first"
        )
    return revision


def job_spec(config: Config, revision: dict[str, Any]) -> dict[str, Any]:
    """The manage job: the revision's container and volumes, args ``manage`` (each run
    overrides them with the command)."""
    containers = revision.get("containers") or [{}]
    container = {k: containers[0][k] for k in _CONTAINER_FIELDS if k in containers[0]}
    task = {k: revision[k] for k in _TASK_FIELDS if k in revision}
    task.update(
        {
            "containers": [{**container, "args": [ce.MANAGE]}],
            "maxRetries": MAX_RETRIES,
            "timeout": f"{TIMEOUT_SECONDS}s",
        }
    )
    labels = dict(config.names.labels)
    return {
        "name": config.names.manage_job,
        "labels": labels,
        "template": {
            "labels": {**labels, REVISION_LABEL: ce.short(revision.get("name"))},
            "taskCount": 1,
            "template": task,
        },
    }


def sync_job(cloud: Cloud, config: Config, revision: dict[str, Any]) -> bool:
    """Create the manage job, or bring it to ``revision``'s container; True when it wrote
    (the job then updates: wait for ``job_ready`` before running it)."""
    jid = config.names.manage_job
    body = job_spec(config, revision)
    current = cloud.run.get_job(jid)
    if current is None:
        cloud.run.create_job(jid, body)
        return True
    if not config.names.owns(current.get("labels")):
        raise ce.not_ours("job", jid)
    wanted = {k: v for k, v in body.items() if k != "name"}
    if not ce.spec_changes(wanted, current):
        return False
    cloud.run.update_job(body)
    return True


def job_ready(job: dict[str, Any] | None) -> bool:
    return (
        job is not None
        and not job.get("reconciling")
        and job.get("generation") == job.get("observedGeneration")
    )


def failure_message(execution: dict[str, Any]) -> str:
    for c in execution.get("conditions") or []:
        if c.get("type") == "Completed" and c.get("message"):
            return str(c["message"])
    return "the execution failed"
