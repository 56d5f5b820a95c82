"""The db-init and migrate Cloud Run jobs: the same image as the service, run before it changes.

Each step creates or updates its job (same env, Cloud SQL socket, runtime service account as the
service) and executes it only when needed:

- db-init (``entrypoint.sh db-init``: extensions, schema grants; idempotent) runs when no
  execution has succeeded for the job's current spec. The spec's hash is a label on the
  execution template (``djdeploy-spec``); executions carry their template's labels, so the
  newest succeeded execution says which spec it ran.
- migrate (``migrate``, ``collectstatic`` without --clear, the superuser if missing) runs when
  no execution has succeeded with the current image (label ``djdeploy-image``: a hash of the
  image reference). It mounts the media bucket, so data migrations that read or write uploads
  work; static files go to /srv/static (collected into the image at build), never to the bucket.
  db-init has no media volume: it only talks to PostgreSQL.

A failed execution fails the step with its name, the condition message and where its logs are;
the engine then stops before the service changes. The next `up` runs it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deployer.errors import Conflict
from deployer.steps import container_env as ce
from deployer.steps.base import Action, Broken, Change, Operation, field_changes

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud

SPEC_LABEL = "djdeploy-spec"
IMAGE_LABEL = "djdeploy-image"
MAX_RETRIES = 0  # a failed migration is not retried blindly: the user reads the logs
TIMEOUT_SECONDS = 1800


def _completed(execution: dict[str, Any]) -> dict[str, Any]:
    for c in execution.get("conditions") or []:
        if c.get("type") == "Completed":
            return c  # type: ignore[no-any-return]
    return {}


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

    def marker(self, task_template: dict[str, Any]) -> str:
        """The label value an execution must carry to count as done for this spec."""
        return ce.spec_hash(task_template)

    def desired(self, inputs: ce.Inputs) -> dict[str, Any]:
        task = self.task_template(inputs)
        labels = dict(self.config.names.labels)
        return {
            "name": self.job_id,
            "labels": labels,
            "template": {
                "labels": {**labels, self.marker_label: self.marker(task)},
                "taskCount": 1,
                "template": task,
            },
        }

    # -- the step ------------------------------------------------------------------------------

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        job = cloud.run.get_job(self.job_id)
        if job is None:
            return None
        return {
            "job": job,
            "executions": cloud.run.list_executions(self.job_id),
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
        fields = field_changes(desired, ce.project(desired, job))
        if fields:
            return self.update(f"job {jid} differs", fields, info=info)
        if newest is not None and execution_state(newest) == "running":
            return self.wait(f"execution {ce.short(newest.get('name'))} running", info=info)
        marker = desired["template"]["labels"][self.marker_label]
        current = [
            e for e in executions if (e.get("labels") or {}).get(self.marker_label) == marker
        ]
        done = next((e for e in current if execution_state(e) == "succeeded"), None)
        if done is not None:
            return self.noop(
                f"{self.name} succeeded for the current {self.what} "
                f"(execution {ce.short(done.get('name'))})",
                info={**info, "execution": ce.short(done.get("name"))},
            )
        failed = current[0] if current and execution_state(current[0]) == "failed" else None
        return self.run(
            f"{self.name} has not succeeded for the current {self.what}",
            failure=None if failed is None else Broken(self.failure(failed)),
            info=info,
        )

    @property
    def what(self) -> str:
        return "spec"

    def failure(self, execution: dict[str, Any]) -> str:
        message = _completed(execution).get("message") or "the execution failed"
        logs = execution.get("logUri") or "Cloud Logging"
        return f"execution {ce.short(execution.get('name'))} failed: {message}; logs: {logs}"

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
    needs: tuple[str, ...] = ("image", "sql-user", "iam-runtime")
    command = ce.DB_INIT
    media = False
    marker_label = SPEC_LABEL

    @property
    def job_id(self) -> str:
        return self.config.names.db_init_job


@dataclass(frozen=True)
class MigrateJob(_Job):
    name = "migrate"
    needs: tuple[str, ...] = ("db-init",)
    command = ce.MIGRATE
    media = True
    marker_label = IMAGE_LABEL

    @property
    def job_id(self) -> str:
        return self.config.names.migrate_job

    @property
    def what(self) -> str:
        return "image"

    def marker(self, task_template: dict[str, Any]) -> str:
        return ce.spec_hash(self.image)
