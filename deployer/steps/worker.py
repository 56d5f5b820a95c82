"""The [worker]: a Cloud Run worker pool running the worker's command (docs/worker.md).

Built as the service is (steps/service.py), from the same image, env (container_env, target
WORKER: secrets pinned to numeric versions, and the broker URL as CELERY_BROKER_URL when
``broker_secret`` is set), Cloud SQL socket, media volume, VPC egress and runtime service
account; its own cpu, memory and ``scaling.manualInstanceCount``. No ports, no probes, no
ingress: a worker pool receives no requests. The command runs through the entrypoint's ``run``
(``entrypoint.sh run celery -A proj worker``), which puts the project on PYTHONPATH with the
runtime settings, as ``manage`` does.

After ``migrate``: a new image's worker starts on a migrated schema. WAIT while a deploy rolls
out; a failed deploy is the step's failure (the last ready template keeps running) and ``up``
deploys it again once, Transient while a fresh secret grant has not reached Cloud Run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deployer.errors import Conflict
from deployer.steps import container_env as ce
from deployer.steps.base import Action, Change, Operation, field_changes
from deployer.steps.service import REDEPLOY_ANNOTATION

if TYPE_CHECKING:
    from deployer.config import Config, WorkerConfig
    from deployer.gcp.cloud import Cloud

#: the entrypoint command that runs any program in the project's directory
RUN = "run"


@dataclass(frozen=True)
class Worker(Operation):
    config: Config
    image: str
    name: str = "worker"
    needs: tuple[str, ...] = ("migrate",)  # a new image's worker starts on a migrated schema

    @property
    def worker(self) -> WorkerConfig:
        assert self.config.worker is not None  # build_steps adds the step only when configured
        return self.config.worker

    @property
    def pool(self) -> str:
        return self.config.names.worker_pool

    @property
    def resource(self) -> str:
        return f"run worker pool {self.pool}"

    # -- the spec ------------------------------------------------------------------------------

    def desired(self, inputs: ce.Inputs) -> dict[str, Any]:
        cfg, w = self.config, self.worker
        container: dict[str, Any] = {
            "image": self.image,
            "args": [RUN, *w.command],
            "resources": {"limits": {"cpu": w.cpu, "memory": w.memory}},
            "env": ce.build_env(cfg, ce.WORKER, inputs),
            "volumeMounts": ce.volume_mounts(media=True),
        }
        template: dict[str, Any] = {
            "serviceAccount": cfg.names.runtime_sa_email,
            "containers": [container],
            "volumes": ce.volumes(cfg, media=True),
            "labels": dict(cfg.names.labels),
        }
        vpc = ce.vpc_access(cfg)
        if vpc is not None:
            template["vpcAccess"] = vpc
        return {
            "name": self.pool,
            "labels": dict(cfg.names.labels),
            "scaling": {"manualInstanceCount": w.instances},
            "template": template,
        }

    # -- the step ------------------------------------------------------------------------------

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        pool = cloud.run.get_worker_pool(self.pool)
        if pool is None:
            return None
        return {"pool": pool, "inputs": ce.observe_inputs(cloud, self.config, (ce.WORKER,))}

    def diff(self, observed: dict[str, Any] | None) -> Change:
        if observed is None:
            return self.create(f"worker pool {self.pool} missing")
        pool: dict[str, Any] = observed["pool"]
        inputs: ce.Inputs = observed["inputs"]
        info = {
            "instances": str((pool.get("scaling") or {}).get("manualInstanceCount") or 0),
            "revision": ce.short(pool.get("latestReadyRevision")),
        }
        refused = ce.refusal(
            self.config,
            self,
            kind="worker pool",
            name=self.pool,
            labels=pool.get("labels"),
            target=ce.WORKER,
            inputs=inputs,
            info=info,
        )
        if refused is not None:
            return refused
        if pool.get("reconciling") or pool.get("generation") != pool.get("observedGeneration"):
            return self.wait(
                f"deploying revision {ce.short(pool.get('latestCreatedRevision'))}", info=info
            )
        desired = self.desired(inputs)
        desired.pop("name")  # short here, full on the server
        fields = field_changes(desired, ce.project(desired, pool))
        if fields:
            return self.update(f"worker pool {self.pool} differs", fields, info=info)
        cond = pool.get("terminalCondition") or {}
        if cond.get("state") == "CONDITION_FAILED":
            return self.update(
                f"revision {ce.short(pool.get('latestCreatedRevision'))} failed; "
                f"{info['revision'] or 'no revision'} keeps running",
                failure=ce.run_failure(cond.get("message") or "the revision failed"),
                info=info,
            )
        if cond.get("state") != "CONDITION_SUCCEEDED":
            return self.wait(f"worker pool {self.pool} not ready", info=info)
        return self.noop(
            f"worker pool {self.pool} runs {info['instances']} instance(s) of revision "
            f"{info['revision']} and matches",
            info=info,
        )

    def apply(self, cloud: Cloud, change: Change) -> None:
        n = self.config.names
        inputs = ce.require_inputs(cloud, self.config, ce.WORKER, f"worker pool {self.pool}")
        body = self.desired(inputs)
        if change.action is Action.CREATE:
            try:
                cloud.run.create_worker_pool(self.pool, body)
                return
            except Conflict:
                current = cloud.run.get_worker_pool(self.pool)
                if current is None or not n.owns(current.get("labels")):
                    raise ce.not_ours("worker pool", self.pool) from None
                # ours (an earlier run created it): bring it to the spec
        current = cloud.run.get_worker_pool(self.pool)
        if current is None:
            cloud.run.create_worker_pool(self.pool, body)
            return
        if change.failure:
            # the spec is unchanged and its revision failed: roll out a new revision of it
            generation = str(int(current.get("generation") or 0) + 1)
            body["template"]["annotations"] = {REDEPLOY_ANNOTATION: generation}
        cloud.run.update_worker_pool(body)

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        current = cloud.run.get_worker_pool(self.pool)
        if current is None:
            return self.noop(f"worker pool {self.pool} is gone")
        if not self.config.names.owns(current.get("labels")):
            return self.noop(f"kept: worker pool {self.pool} is not managed by djdeploy")
        if current.get("deleteTime") and current.get("reconciling"):
            return self.deleted("deletion in progress")
        cloud.run.delete_worker_pool(self.pool)
        return self.deleted(f"deleted worker pool {self.pool}")
