"""The Google APIs djdeploy calls, enabled in the project (Service Usage).

Enabling is a long-running operation of 10-60 s; apply starts one batchEnable and returns, the
engine re-observes until every API reports ENABLED. destroy never disables an API: other
workloads in the project may use it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from deployer.steps.base import Action, Change, FieldChange, Operation

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud

#: every API a deployment calls (cloudresourcemanager: the project number and project IAM)
REQUIRED_APIS: tuple[str, ...] = (
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "iam.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com",
)

MONITORING_API = "monitoring.googleapis.com"
SCHEDULER_API = "cloudscheduler.googleapis.com"
REDIS_API = "redis.googleapis.com"
#: the project's VPC networks: enabling it creates the ``default`` network a Redis broker and
#: Direct VPC egress use when there is no [vpc] (unless an organization policy forbids it)
COMPUTE_API = "compute.googleapis.com"


def required_apis(config: Config) -> tuple[str, ...]:
    """The APIs this deployment calls: Cloud Monitoring too when [monitoring] is on, Cloud
    Scheduler when there are [[cron]] entries, Memorystore for Redis and Compute Engine (its
    network) with a Redis broker."""
    apis = REQUIRED_APIS
    if config.monitoring.enabled:
        apis = (*apis, MONITORING_API)
    if config.cron:
        apis = (*apis, SCHEDULER_API)
    if config.redis_broker:
        apis = (*apis, COMPUTE_API, REDIS_API)
    return apis


@dataclass(frozen=True)
class Apis(Operation):
    config: Config
    name: str = "apis"
    needs: Sequence[str] = ()
    services: tuple[str, ...] = REQUIRED_APIS
    EXPECT: ClassVar[Mapping[Action, str]] = {Action.UPDATE: "serviceusage.enable"}

    @property
    def resource(self) -> str:
        return f"APIs of project {self.config.project}"

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        return {"enabled": sorted(cloud.services.enabled(self.services))}

    def missing(self, observed: dict[str, Any] | None) -> list[str]:
        enabled = set((observed or {}).get("enabled", []))
        return [s for s in self.services if s not in enabled]

    def diff(self, observed: dict[str, Any] | None) -> Change:
        missing = self.missing(observed)
        if not missing:
            return self.noop(f"{len(self.services)} APIs enabled")
        return self.update(
            f"{len(missing)} API(s) not enabled: {', '.join(missing)}",
            [FieldChange(f"services.{s}", "DISABLED", "ENABLED") for s in missing],
        )

    def apply(self, cloud: Cloud, change: Change) -> None:
        missing = [f.path.removeprefix("services.") for f in change.fields]
        if missing:
            cloud.services.enable(missing)  # an operation: the engine re-observes

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        return self.noop("APIs stay enabled: other workloads may use them")
