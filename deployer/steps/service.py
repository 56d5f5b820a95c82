"""The Cloud Run v2 service: the Django app behind its own predictable URL.

One revision template (docs/steps-run.md, "The service"): the runtime service
account, the second-generation environment (GCS FUSE needs it), scaling, timeout, concurrency,
the image, port 8080, cpu/memory, the env of the deployer/container contract (secrets pinned to
numeric versions), a startup probe on the readiness URL (the database answers) and a liveness
probe on the plain health URL (the process answers), the Cloud SQL socket at /cloudsql and the
media bucket at /app/media, VPC egress when configured, ingress and labels.

observe reads the service, the project number (for the URL) and the secrets' latest enabled
versions; diff compares only the fields set here; WAIT while a revision rolls out; a failed
revision is the step's failure (the previous revision keeps serving) and `up` deploys it again
once. A revision that failed on "Permission denied on secret" failed only because a fresh
secretAccessor grant had not reached Cloud Run yet (that takes minutes): a Transient failure,
deployed again every SECRET_GRANT_RETRY seconds until the step's deadline
(container_env.run_failure: the jobs' executions fail the same way).

A rollback (deployer/rollbacks.py, docs/rollback.md) pins the traffic: 100% to one revision and
the service annotation PIN_ANNOTATION naming it. While pinned, the step keeps both in every
update it makes, so `up` deploys a new revision that gets no traffic and never silently moves
traffic back; plan and status say "pinned to REVISION by rollback". `djdeploy rollback --undo`
removes the pin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from deployer.steps import container_env as ce
from deployer.steps import rollout
from deployer.steps.base import Action, Change, Operation

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud

_INGRESS = {
    "all": "INGRESS_TRAFFIC_ALL",
    "internal": "INGRESS_TRAFFIC_INTERNAL_ONLY",
    "internal-and-cloud-load-balancing": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
}
READY_QUERY = "ready=1"
#: on the service (not its template: no new revision): the revision a rollback pinned
PIN_ANNOTATION = "djdeploy.dev/pinned-revision"
REVISION_TRAFFIC = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"
LATEST_TRAFFIC = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"


def pinned_revision(service: dict[str, Any]) -> str | None:
    """The revision a rollback pinned the service to, or None."""
    return (service.get("annotations") or {}).get(PIN_ANNOTATION) or None


def pin_spec(revision: str | None) -> dict[str, Any]:
    """The service fields of a pin to ``revision`` (None: unpinned, all traffic to the latest
    ready revision)."""
    if revision is None:
        return {"traffic": [{"type": LATEST_TRAFFIC, "percent": 100}]}
    return {
        "annotations": {PIN_ANNOTATION: revision},
        "traffic": [{"type": REVISION_TRAFFIC, "revision": revision, "percent": 100}],
    }


def rolled_out(svc: dict[str, Any]) -> bool:
    """The service's newest revision is ready and serves: no rollout under way."""
    cond = svc.get("terminalCondition") or {}
    return (
        not svc.get("reconciling")
        and svc.get("generation") == svc.get("observedGeneration")
        and cond.get("state") == "CONDITION_SUCCEEDED"
        and svc.get("latestReadyRevision") == svc.get("latestCreatedRevision")
    )


def readiness_path(path: str) -> str:
    return f"{path}{'&' if '?' in path else '?'}{READY_QUERY}"


@dataclass(frozen=True)
class Service(Operation):
    config: Config
    image: str
    name: str = "service"
    needs: tuple[str, ...] = ("migrate",)
    EXPECT: ClassVar[Mapping[Action, str]] = {
        Action.CREATE: "run.service.deploy",
        Action.UPDATE: "run.service.deploy",
    }

    @property
    def resource(self) -> str:
        return f"run service {self.config.names.service}"

    # -- the spec ------------------------------------------------------------------------------

    def desired(self, inputs: ce.Inputs, *, pin: str | None = None) -> dict[str, Any]:
        """The service's spec; with ``pin`` (a rollback's), its traffic stays on that revision."""
        cfg = self.config
        s, p = cfg.service, cfg.probes
        container: dict[str, Any] = {
            "image": self.image,
            "ports": [{"containerPort": 8080}],
            "resources": ce.resources(cfg),
            "env": ce.build_env(cfg, ce.SERVICE, inputs),
            "startupProbe": {
                "httpGet": {"path": readiness_path(p.path)},
                "initialDelaySeconds": p.startup_initial_delay,
                "periodSeconds": p.startup_period,
                "timeoutSeconds": p.startup_timeout,
                "failureThreshold": p.startup_failure_threshold,
            },
            "livenessProbe": {
                "httpGet": {"path": p.path},
                "periodSeconds": p.liveness_period,
                "timeoutSeconds": p.liveness_timeout,
                "failureThreshold": p.liveness_failure_threshold,
            },
            "volumeMounts": ce.volume_mounts(media=True),
        }
        template: dict[str, Any] = {
            "serviceAccount": cfg.names.runtime_sa_email,
            "executionEnvironment": "EXECUTION_ENVIRONMENT_GEN2",
            "scaling": {"minInstanceCount": s.min_instances, "maxInstanceCount": s.max_instances},
            "timeout": f"{s.timeout_seconds}s",
            "maxInstanceRequestConcurrency": s.concurrency,
            "containers": [container],
            "volumes": ce.volumes(cfg, media=True),
            "labels": dict(cfg.names.labels),
        }
        vpc = ce.vpc_access(cfg)
        if vpc is not None:
            template["vpcAccess"] = vpc
        spec = {
            "name": cfg.names.service,
            "labels": dict(cfg.names.labels),
            "ingress": _INGRESS[s.ingress],
            "template": template,
        }
        if pin is not None:
            spec.update(pin_spec(pin))
        return spec

    # -- the step ------------------------------------------------------------------------------

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        service = cloud.run.get_service(self.config.names.service)
        if service is None:
            return None
        inputs = ce.observe_inputs(cloud, self.config, (ce.SERVICE,))
        return {"service": service, "inputs": inputs}

    def diff(self, observed: dict[str, Any] | None) -> Change:
        n = self.config.names
        if observed is None:
            return self.create(f"service {n.service} missing")
        svc: dict[str, Any] = observed["service"]
        inputs: ce.Inputs = observed["inputs"]
        url = n.service_url(inputs.project_number)
        info = {"url": url, "revision": ce.short(svc.get("latestReadyRevision"))}
        others = [u for u in ce.service_urls(svc) if u != url]
        if others or self.config.domains:
            info["urls"] = ", ".join([*others, *(f"https://{d}" for d in self.config.domains)])
        pin = pinned_revision(svc)
        if pin is not None:
            info["pinned"] = pin
        change = self._diff(svc, inputs, info, pin)
        if pin is None:
            return change
        latest = info["revision"]
        undo = "unpins it" if latest == pin else f"moves traffic to {latest}"
        return replace(
            change,
            reason=f"{change.reason}; pinned to {pin} by rollback (`djdeploy rollback --undo` "
            f"{undo})",
        )

    def _diff(
        self, svc: dict[str, Any], inputs: ce.Inputs, info: dict[str, str], pin: str | None
    ) -> Change:
        n = self.config.names
        url = info["url"]
        refused = ce.refusal(
            self.config,
            self,
            kind="service",
            name=n.service,
            labels=svc.get("labels"),
            target=ce.SERVICE,
            inputs=inputs,
            info=info,
        )
        if refused is not None:
            return refused
        changed = rollout.rollout_change(
            self,
            f"service {n.service}",
            svc,
            self.desired(inputs, pin=pin),
            keeps="serving",
            info=info,
        )
        if changed is not None:
            return changed
        if not rolled_out(svc):
            return self.wait(f"service {n.service} not ready", info=info)
        return self.noop(
            f"service {n.service} is ready at {url} (revision {info['revision']}) and matches",
            info=info,
        )

    def _resource(self, cloud: Cloud) -> rollout.Resource:
        run = cloud.run
        return rollout.Resource(
            kind="service",
            name=self.config.names.service,
            get=run.get_service,
            create=run.create_service,
            update=run.update_service,
            remove=run.delete_service,
        )

    def apply(self, cloud: Cloud, change: Change) -> None:
        n = self.config.names
        inputs = ce.require_inputs(cloud, self.config, ce.SERVICE, f"service {n.service}")
        res = self._resource(cloud)
        body = self.desired(inputs)
        current = rollout.create_or_current(res, change, body, owns=n.owns)
        if current is None:
            return
        pin = pinned_revision(current)
        if pin is not None:  # a rollback's pin stays: the new revision gets no traffic
            body.update(pin_spec(pin))
        rollout.deploy(res, change, body, current)

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        return rollout.delete(self, self._resource(cloud), owns=self.config.names.owns)
