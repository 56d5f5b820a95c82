"""The db-init and migrate Cloud Run jobs: the same image as the service, run before it changes.

Each step creates or updates its job (same env, Cloud SQL socket, runtime service account as the
service) and executes it only when needed:

- db-init (``entrypoint.sh db-init``: extensions, schema grants; idempotent) runs when what it
  does changes: its extensions, database, user, instance, or the db-init code in the container
  runtime (``DB_INIT_CODE``). Their hash is a label on the execution template (``djdeploy-spec``);
  executions carry their template's labels, so the newest succeeded execution says what it did.
  A new image or a memory change does not run it.
- migrate (``migrate``, ``collectstatic`` without --clear, the superuser if missing) runs when
  no execution has succeeded with the current image (label ``djdeploy-image``: a hash of the
  image reference and, after a rotation of the superuser password, of its two pinned versions:
  so that rotation runs it once, docs/rotate.md). It mounts the media bucket, so data
  migrations that read or write uploads work; static files go to /srv/static (collected into
  the image at build), never to the bucket. db-init has no media volume: it only talks to
  PostgreSQL.

A failed execution fails the step with its name, the condition message and where its logs are;
the engine then stops before the service changes. The next `up` runs it again. An execution that
failed on a secret its fresh grant has not reached yet is transient: run again every
SECRET_GRANT_RETRY seconds (container_env.run_failure), as the service deploys again.

Each job is created (or updated) as soon as what its definition names exists: the image, the
secrets' versions and the runtime account's access to them (``needs``); only its execution
waits for what it works on (``run_needs``: db-init for the database user, migrate for
db-init), so on a fresh project both jobs are made while Cloud SQL still starts. Either step is
done only once its run_needs are, so everything after migrate still comes after db-init.

A job's definition (image, env, resources) matters only when it runs: once a job has succeeded
for its current marker, a difference there waits until it next runs (then the job is updated,
then executed). So a code change's chain is build -> migrate -> service, with no db-init job
update on it, and a memory change updates the service alone. One exception: a definition that
pins other secret versions than the current ones is updated at once (not run), so that no job
reads a version a secret rotation disables (steps/rotation.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from deployer.archive import container_dir
from deployer.errors import Conflict, PermissionDenied
from deployer.steps import container_env as ce
from deployer.steps.base import Action, Change, Operation

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud

SPEC_LABEL = "djdeploy-spec"
IMAGE_LABEL = "djdeploy-image"
MAX_RETRIES = 0  # a failed migration is not retried blindly: the user reads the logs
TIMEOUT_SECONDS = 1800
#: the container runtime's files the db-init process runs (entrypoint.sh only execs it)
DB_INIT_CODE = (
    "djdeploy_runtime/dbinit.py",
    "djdeploy_runtime/dbwait.py",
    "djdeploy_runtime/jsonlog.py",
)
#: where a job's definition says what it runs with: a difference here waits for its next run
TASK = "template.template."


def code_hash(container: Path, files: tuple[str, ...] = DB_INIT_CODE) -> str:
    """A hash of the db-init code shipped in the image (changes when djdeploy's does)."""
    return ce.spec_hash({name: (container / name).read_text() for name in files})


def _completed(execution: dict[str, Any]) -> dict[str, Any]:
    for c in execution.get("conditions") or []:
        if c.get("type") == "Completed":
            return c  # type: ignore[no-any-return]
    return {}


#: how long a cause may be in the step's failure line; `djdeploy logs` has the rest
CAUSE_CHARS = 300


def last_error(cloud: Cloud, job_id: str, execution: dict[str, Any] | None) -> str:
    """A failed execution's newest ERROR line from its container (the runtime's one-line
    reason, e.g. "migrate: migrate failed: ModuleNotFoundError: No module named 'yaml'"), so
    that a failed `up` says why without a `djdeploy logs`. "" when the execution did not fail,
    printed no such line, or its logs cannot be read (no roles/logging.viewer)."""
    if execution is None or execution_state(execution) != "failed":
        return ""
    terms = (
        'resource.type="cloud_run_job"',
        f'resource.labels.job_name="{job_id}"',
        f'labels."run.googleapis.com/execution_name"="{ce.short(execution.get("name"))}"',
        "severity>=ERROR",
    )
    try:
        entries = cloud.logging.list_entries(" AND ".join(terms), newest_first=True, limit=5)
    except PermissionDenied:
        return ""
    for entry in entries:
        lines = entry.message.strip().splitlines()
        if lines and not lines[-1].startswith("Container called exit("):  # Cloud Run's own
            line = lines[-1].strip()
            return line if len(line) <= CAUSE_CHARS else line[: CAUSE_CHARS - 3] + "..."
    return ""


def execution_state(execution: dict[str, Any]) -> str:
    """ "running", "succeeded" or "failed"."""
    tasks = int(execution.get("taskCount") or 0)
    succeeded = int(execution.get("succeededCount") or 0)
    failed = int(execution.get("failedCount") or 0) + int(execution.get("cancelledCount") or 0)
    if not execution.get("completionTime"):
        return "running"
    if tasks and succeeded == tasks and failed == 0:
        return "succeeded"
    return "failed"


@dataclass(frozen=True)
class _Job(Operation):
    config: Config
    image: str

    name = "job"
    needs: tuple[str, ...] = ()
    #: what its execution needs besides (engine.run_needs): the job is created or updated
    #: beside them, run once they are done
    run_needs: tuple[str, ...] = ()
    EXPECT: ClassVar[Mapping[Action, str]] = {
        Action.CREATE: "run.job.update",
        Action.UPDATE: "run.job.update",
        Action.RUN: "run.execution",
    }
    command = ""
    media = False
    marker_label = SPEC_LABEL

    @property
    def job_id(self) -> str:
        raise NotImplementedError

    @property
    def resource(self) -> str:
        return f"run job {self.job_id}"

    # -- the spec ------------------------------------------------------------------------------

    def task_template(self, inputs: ce.Inputs) -> dict[str, Any]:
        cfg = self.config
        container = {
            "image": self.image,
            "args": [self.command],
            "resources": ce.resources(cfg),
            "env": ce.build_env(cfg, self.command, inputs),
            "volumeMounts": ce.volume_mounts(media=self.media),
        }
        template: dict[str, Any] = {
            "containers": [container],
            "volumes": ce.volumes(cfg, media=self.media),
            "maxRetries": MAX_RETRIES,
            "timeout": f"{TIMEOUT_SECONDS}s",
            "serviceAccount": cfg.names.runtime_sa_email,
            "executionEnvironment": "EXECUTION_ENVIRONMENT_GEN2",
        }
        vpc = ce.vpc_access(cfg)
        if vpc is not None:
            template["vpcAccess"] = vpc
        return template

    def marker(self, inputs: ce.Inputs) -> str:
        """The label value an execution must carry to count as done: a hash of what the job's
        run depends on."""
        raise NotImplementedError

    def desired(self, inputs: ce.Inputs) -> dict[str, Any]:
        task = self.task_template(inputs)
        labels = dict(self.config.names.labels)
        return {
            "name": self.job_id,
            "labels": labels,
            "template": {
                "labels": {**labels, self.marker_label: self.marker(inputs)},
                "taskCount": 1,
                "template": task,
            },
        }

    # -- the step ------------------------------------------------------------------------------

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        job = cloud.run.get_job(self.job_id)
        if job is None:
            return None
        executions = cloud.run.list_executions(self.job_id)
        return {
            "job": job,
            "executions": executions,
            "last_error": last_error(cloud, self.job_id, executions[0] if executions else None),
            "inputs": ce.observe_inputs(cloud, self.config, (self.command,)),
        }

    def diff(self, observed: dict[str, Any] | None) -> Change:
        jid = self.job_id
        if observed is None:
            return self.create(f"job {jid} missing")
        job: dict[str, Any] = observed["job"]
        executions: list[dict[str, Any]] = observed["executions"]
        inputs: ce.Inputs = observed["inputs"]
        newest = executions[0] if executions else None
        info = {"execution": ce.short(newest.get("name"))} if newest else {}
        refused = ce.refusal(
            self.config,
            self,
            kind="job",
            name=jid,
            labels=job.get("labels"),
            target=self.command,
            inputs=inputs,
            info=info,
        )
        if refused is not None:
            return refused
        if job.get("reconciling") or job.get("generation") != job.get("observedGeneration"):
            return self.wait(f"job {jid} updating", info=info)
        desired = self.desired(inputs)
        desired.pop("name")  # short here, full on the server
        marker = desired["template"]["labels"][self.marker_label]
        current = [
            e for e in executions if (e.get("labels") or {}).get(self.marker_label) == marker
        ]
        done = next((e for e in current if execution_state(e) == "succeeded"), None)
        fields = ce.spec_changes(desired, job)
        pins_moved = ce.template_pins(desired["template"]["template"]) != ce.template_pins(
            (job.get("template") or {}).get("template")
        )
        if done is not None and not pins_moved:  # updated before it next runs
            fields = [f for f in fields if not f.path.startswith(TASK)]
        if fields:
            return self.update(f"job {jid} differs", fields, info=info)
        if newest is not None and execution_state(newest) == "running":
            return self.wait(f"execution {ce.short(newest.get('name'))} running", info=info)
        if done is not None:
            return self.noop(
                f"{self.name} succeeded for the current {self.what} "
                f"(execution {ce.short(done.get('name'))})",
                info={**info, "execution": ce.short(done.get("name"))},
            )
        failed = current[0] if current and execution_state(current[0]) == "failed" else None
        return self.run(
            f"{self.name} has not succeeded for the current {self.what}",
            failure=None
            if failed is None
            else ce.run_failure(
                self.failure(failed, cause=observed["last_error"] if failed is newest else "")
            ),
            info=info,
        )

    @property
    def what(self) -> str:
        """What the marker stands for, in the step's reasons."""
        raise NotImplementedError

    def failure(self, execution: dict[str, Any], *, cause: str) -> str:
        """Why (its container's last error line, when read) and where its logs are:
        `djdeploy logs`, which reads them on Google and the emulator alike (the execution's
        console URL means nothing under --emulator)."""
        message = _completed(execution).get("message") or "the execution failed"
        why = f"; its last error: {cause}" if cause and cause not in message else ""
        logs = f"`djdeploy logs --tenant {self.config.tenant} --job {self.name}`"
        return f"execution {ce.short(execution.get('name'))} failed: {message}{why}; logs: {logs}"

    def apply(self, cloud: Cloud, change: Change) -> None:
        jid = self.job_id
        if change.action is Action.RUN:
            cloud.run.run_job(jid)
            return
        inputs = ce.require_inputs(cloud, self.config, self.command, f"job {jid}")
        body = self.desired(inputs)
        current = cloud.run.get_job(jid)
        if current is None:
            try:
                cloud.run.create_job(jid, body)
                return
            except Conflict:
                current = cloud.run.get_job(jid)
        if current is None or not self.config.names.owns(current.get("labels")):
            raise ce.not_ours("job", jid)
        cloud.run.update_job(body)

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        jid = self.job_id
        current = cloud.run.get_job(jid)
        if current is None:
            return self.noop(f"job {jid} is gone")
        if not self.config.names.owns(current.get("labels")):
            return self.noop(f"kept: job {jid} is not managed by djdeploy")
        cloud.run.delete_job(jid)
        return self.deleted(f"deleted job {jid}")


@dataclass(frozen=True)
class DbInitJob(_Job):
    name = "db-init"
    needs: tuple[str, ...] = ("image", "iam-runtime")  # what its definition names
    run_needs: tuple[str, ...] = ("sql-user",)  # the database and user it sets up
    command = ce.DB_INIT
    media = False
    marker_label = SPEC_LABEL

    @property
    def job_id(self) -> str:
        return self.config.names.db_init_job

    @property
    def what(self) -> str:
        return "database setup"

    def marker(self, *_: object) -> str:
        """What db-init does: not the image (a code change), nor env or resources."""
        cfg = self.config
        return ce.spec_hash(
            {
                "extensions": list(cfg.database.extensions),
                "instance": cfg.names.connection_name,
                "database": cfg.names.database,
                "user": cfg.names.db_user,
                "code": code_hash(container_dir()),
            }
        )


@dataclass(frozen=True)
class MigrateJob(_Job):
    name = "migrate"
    needs: tuple[str, ...] = ("image", "iam-runtime")  # what its definition names
    run_needs: tuple[str, ...] = ("db-init",)
    command = ce.MIGRATE
    media = True
    marker_label = IMAGE_LABEL

    @property
    def job_id(self) -> str:
        return self.config.names.migrate_job

    @property
    def what(self) -> str:
        return "image"

    def marker(self, inputs: ce.Inputs) -> str:
        """The image and, after a rotation of the superuser password (its previous version is
        still enabled), both versions: so the rotation runs migrate once, which moves a
        superuser still on the previous password to the new one (superuser.py). Before any
        rotation, the image alone."""
        sid = self.config.names.secret_superuser_password
        previous = inputs.previous.get(sid)
        if not previous:
            return ce.spec_hash(self.image)
        return ce.spec_hash([self.image, inputs.versions.get(sid), previous])
