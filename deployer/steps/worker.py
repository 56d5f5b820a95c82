"""The [worker]: a Cloud Run worker pool running the worker's command (docs/worker.md).

Built as the service is (steps/service.py), from the same image, env (container_env, target
WORKER: secrets pinned to numeric versions, and the broker URL as CELERY_BROKER_URL when
``broker_secret`` is set), Cloud SQL socket, media volume, VPC egress and runtime service
account; its own cpu, memory and ``scaling.manualInstanceCount``. No ports, no probes, no
ingress: a worker pool receives no requests. The command runs through the entrypoint's ``run``
(``entrypoint.sh run celery -A proj worker``), which puts the project on PYTHONPATH with the
runtime settings, as ``manage`` does.

After ``migrate``: a new image's worker starts on a migrated schema. WAIT while a deploy rolls
out; a failed deploy (a revision whose container exits before it has started: a wrong command)
is the step's failure, one line naming the pool, Cloud Run's reason, the revision that keeps
running and ``djdeploy logs --worker``; ``up`` deploys it again once per run, Transient while a
fresh secret grant has not reached Cloud Run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from deployer.steps import container_env as ce
from deployer.steps import rollout
from deployer.steps.base import Action, Change, Operation

if TYPE_CHECKING:
    from deployer.config import Config, WorkerConfig
    from deployer.gcp.cloud import Cloud

#: the entrypoint command that runs any program in the project's directory
RUN = "run"
#: what Cloud Run's message of a failed revision says around its reason
_NOT_READY = re.compile(r"^Revision '[^']*' is not ready and cannot serve traffic\. ")
_MORE = " Logs for this revision might contain more information."


class OnWorkerPool:
    """The worker pool a step looks after: its name, and the resource it reports."""

    config: Config

    @property
    def pool(self) -> str:
        return self.config.names.worker_pool

    @property
    def resource(self) -> str:
        return f"run worker pool {self.pool}"


@dataclass(frozen=True)
class Worker(OnWorkerPool, Operation):
    config: Config
    image: str
    name: str = "worker"
    needs: tuple[str, ...] = ("migrate",)  # a new image's worker starts on a migrated schema
    EXPECT: ClassVar[Mapping[Action, str]] = {  # a worker pool deploys like a service
        Action.CREATE: "run.service.deploy",
        Action.UPDATE: "run.service.deploy",
    }

    @property
    def worker(self) -> WorkerConfig:
        assert self.config.worker is not None  # build_steps adds the step only when configured
        return self.config.worker

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
        changed = rollout.rollout_change(
            self,
            f"worker pool {self.pool}",
            pool,
            self.desired(inputs),
            keeps="running",
            info=info,
            explain=lambda message: self.failed(pool, message),
        )
        if changed is not None:
            return changed
        cond = pool.get("terminalCondition") or {}
        if cond.get("state") != "CONDITION_SUCCEEDED":
            return self.wait(f"worker pool {self.pool} not ready", info=info)
        return self.noop(
            f"worker pool {self.pool} runs {info['instances']} instance(s) of revision "
            f"{info['revision']} and matches",
            info=info,
        )

    def failed(self, pool: dict[str, Any], message: str) -> str:
        """The step's one line for a failed revision: the pool, Cloud Run's reason (its first
        line, without the revision preamble), what keeps running, where the logs are."""
        reason = _NOT_READY.sub("", message.strip().split("\n", 1)[0]).replace(_MORE, "")
        ready = ce.short(pool.get("latestReadyRevision"))
        keeps = f"revision {ready} keeps running" if ready else "no revision of it runs"
        return (
            f"worker pool {self.pool}: revision {ce.short(pool.get('latestCreatedRevision'))} "
            f"failed: {reason.rstrip('.')}; {keeps} and the next up deploys it again; its logs: "
            f"`djdeploy logs --tenant {self.config.tenant} --worker`"
        )

    def _resource(self, cloud: Cloud) -> rollout.Resource:
        run = cloud.run
        return rollout.Resource(
            kind="worker pool",
            name=self.pool,
            get=run.get_worker_pool,
            create=run.create_worker_pool,
            update=run.update_worker_pool,
            remove=run.delete_worker_pool,
        )

    def apply(self, cloud: Cloud, change: Change) -> None:
        inputs = ce.require_inputs(cloud, self.config, ce.WORKER, f"worker pool {self.pool}")
        res = self._resource(cloud)
        body = self.desired(inputs)
        current = rollout.create_or_current(res, change, body, owns=self.config.names.owns)
        if current is not None:
            rollout.deploy(res, change, body, current)

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        return rollout.delete(self, self._resource(cloud), owns=self.config.names.owns)
