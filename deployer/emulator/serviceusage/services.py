"""Service Usage's state: which services each project (by number) has enabled, and the
operations that enable or disable them (no HTTP).

A new project has :data:`DEFAULT_ENABLED` enabled; an unknown service is 403
``SERVICE_CONFIG_NOT_FOUND_OR_PERMISSION_DENIED``. Other APIs call :func:`require_enabled` to
answer 403 ``SERVICE_DISABLED`` the way every Google API does.
"""

from __future__ import annotations

import builtins
import uuid
from typing import TYPE_CHECKING, Any

from ..errors import PermissionDenied
from ..operations import completer
from ..projects import resolve

if TYPE_CHECKING:
    from ..context import Emulator

KIND = "serviceusage.service"
TYPE_PREFIX = "type.googleapis.com/google.api.serviceusage.v1."

#: services the emulator knows, with their titles
TITLES: dict[str, str] = {
    "analyticshub.googleapis.com": "Analytics Hub API",
    "artifactregistry.googleapis.com": "Artifact Registry API",
    "bigquery.googleapis.com": "BigQuery API",
    "bigqueryconnection.googleapis.com": "BigQuery Connection API",
    "bigquerydatapolicy.googleapis.com": "BigQuery Data Policy API",
    "bigquerymigration.googleapis.com": "BigQuery Migration API",
    "bigqueryreservation.googleapis.com": "BigQuery Reservation API",
    "bigquerystorage.googleapis.com": "BigQuery Storage API",
    "cloudapis.googleapis.com": "Google Cloud APIs",
    "cloudbuild.googleapis.com": "Cloud Build API",
    "cloudresourcemanager.googleapis.com": "Cloud Resource Manager API",
    "cloudscheduler.googleapis.com": "Cloud Scheduler API",
    "cloudtrace.googleapis.com": "Cloud Trace API",
    "compute.googleapis.com": "Compute Engine API",
    "containerregistry.googleapis.com": "Container Registry API",
    "dataform.googleapis.com": "Dataform API",
    "dataplex.googleapis.com": "Cloud Dataplex API",
    "datastore.googleapis.com": "Cloud Datastore API",
    "iam.googleapis.com": "Identity and Access Management (IAM) API",
    "iamcredentials.googleapis.com": "IAM Service Account Credentials API",
    "logging.googleapis.com": "Cloud Logging API",
    "monitoring.googleapis.com": "Cloud Monitoring API",
    "pubsub.googleapis.com": "Cloud Pub/Sub API",
    "redis.googleapis.com": "Google Cloud Memorystore for Redis API",
    "run.googleapis.com": "Cloud Run Admin API",
    "secretmanager.googleapis.com": "Secret Manager API",
    "servicemanagement.googleapis.com": "Service Management API",
    "serviceusage.googleapis.com": "Service Usage API",
    "sql-component.googleapis.com": "Cloud SQL",
    "sqladmin.googleapis.com": "Cloud SQL Admin API",
    "storage-api.googleapis.com": "Google Cloud Storage JSON API",
    "storage-component.googleapis.com": "Cloud Storage",
    "storage.googleapis.com": "Cloud Storage API",
    "vpcaccess.googleapis.com": "Serverless VPC Access API",
}

#: enabled in every new project (as in a project created from the console)
DEFAULT_ENABLED: frozenset[str] = frozenset(
    {
        "analyticshub.googleapis.com",
        "bigquery.googleapis.com",
        "bigqueryconnection.googleapis.com",
        "bigquerydatapolicy.googleapis.com",
        "bigquerymigration.googleapis.com",
        "bigqueryreservation.googleapis.com",
        "bigquerystorage.googleapis.com",
        "cloudapis.googleapis.com",
        "cloudtrace.googleapis.com",
        "dataform.googleapis.com",
        "dataplex.googleapis.com",
        "datastore.googleapis.com",
        "logging.googleapis.com",
        "monitoring.googleapis.com",
        "servicemanagement.googleapis.com",
        "serviceusage.googleapis.com",
        "sql-component.googleapis.com",
        "storage-api.googleapis.com",
        "storage-component.googleapis.com",
        "storage.googleapis.com",
    }
)


def _check_service(service: str) -> None:
    if service not in TITLES:
        raise PermissionDenied(
            f"Not found or permission denied for service(s): {service}.",
            reason="SERVICE_CONFIG_NOT_FOUND_OR_PERMISSION_DENIED",
            domain="serviceusage.googleapis.com",
            metadata={"services": service},
        )


def is_enabled(emu: Emulator, project: str, service: str) -> bool:
    _, number = resolve(emu, project)
    rec = emu.store.get(KIND, f"{number}/{service}")
    if rec is None:
        return service in DEFAULT_ENABLED
    return rec["state"] == "ENABLED"


def set_enabled(emu: Emulator, project: str, service: str, enabled: bool = True) -> None:
    """Enable or disable a service directly (tests, fixtures)."""
    _, number = resolve(emu, project)
    emu.store.put(KIND, f"{number}/{service}", {"state": "ENABLED" if enabled else "DISABLED"})


def require_enabled(emu: Emulator, project: str, service: str, *, legacy: bool = False) -> None:
    """Answer 403 SERVICE_DISABLED, like every Google API called in a project where it is not
    enabled. ``legacy=True`` for discovery-era APIs (adds errors[] with reason
    accessNotConfigured)."""
    if is_enabled(emu, project, service):
        return
    _, number = resolve(emu, project)
    title = TITLES.get(service, service)
    url = f"https://console.developers.google.com/apis/api/{service}/overview?project={number}"
    raise PermissionDenied(
        f"{title} has not been used in project {number} before or it is disabled. Enable it by "
        f"visiting {url} then retry. If you enabled this API recently, wait a few minutes for "
        "the action to propagate to our systems and retry.",
        reason="SERVICE_DISABLED",
        metadata={
            "consumer": f"projects/{number}",
            "service": service,
            "activationUrl": url,
            "serviceTitle": title,
            "containerInfo": number,
        },
        legacy=legacy,
        legacy_reason="accessNotConfigured",
    )


def service_json(number: str, service: str, state: str) -> dict[str, Any]:
    """A Service resource."""
    return {
        "name": f"projects/{number}/services/{service}",
        "config": {"name": service, "title": TITLES.get(service, service)},
        "state": state,
        "parent": f"projects/{number}",
    }


class Services:
    """The services of one project (by number)."""

    def __init__(self, emu: Emulator, project: str) -> None:
        self.emu = emu
        _, self.number = resolve(emu, project)

    def get(self, service: str) -> dict[str, Any]:
        rec = self.emu.store.get(KIND, f"{self.number}/{service}")
        state = rec["state"] if rec else ("ENABLED" if service in DEFAULT_ENABLED else "DISABLED")
        return service_json(self.number, service, state)

    def list(self, state: str | None) -> list[dict[str, Any]]:
        """Every known service (and any the project has a record of), in ``state`` if given."""
        recorded = {k.split("/", 1)[1] for k, _ in self.emu.store.list(KIND, self.number)}
        services = [self.get(s) for s in sorted(set(TITLES) | recorded)]
        return [s for s in services if s["state"] == state] if state else services

    def switch(self, service: str, state: str) -> dict[str, Any] | None:
        """Start enabling or disabling one service; None when it is in ``state`` already."""
        _check_service(service)
        verb = "enable" if state == "ENABLED" else "disable"
        with self.emu.store.transaction():  # read-modify-write: the check and the start together
            if self.get(service)["state"] == state:
                return None
            return self._start([service], f"serviceusage.{verb}", state)

    def batch_enable(self, ids: builtins.list[str]) -> dict[str, Any] | None:
        """Start enabling the services ``ids`` names; None when all are enabled already."""
        for s in ids:
            _check_service(s)
        services = list(dict.fromkeys(ids))
        if all(self.get(s)["state"] == "ENABLED" for s in services):
            return None
        return self._start(services, "serviceusage.batchEnable", "ENABLED")

    def _start(
        self, services: builtins.list[str], completer_name: str, state: str
    ) -> dict[str, Any]:
        number = self.number
        return self.emu.ops.start(
            completer=completer_name,
            duration_kind="serviceusage.enable",
            target=f"projects/{number}/services",
            args={"number": number, "services": services, "state": state},
            metadata={
                "resourceNames": [f"services/{s}/projectSettings/{number}" for s in services],
            },
            op_id=f"acat.p2-{number}-{uuid.uuid4()}",
        )


def _apply(emu: Emulator, op: dict[str, Any]) -> list[dict[str, Any]]:
    number, state = op["args"]["number"], op["args"]["state"]
    out = []
    for s in op["args"]["services"]:
        emu.store.put(KIND, f"{number}/{s}", {"state": state})
        out.append(service_json(number, s, state))
    return out


@completer("serviceusage.enable")
def _finish_enable(emu: Emulator, op: dict[str, Any]) -> dict[str, Any]:
    services = _apply(emu, op)
    return {"@type": TYPE_PREFIX + "EnableServiceResponse", "service": services[0]}


@completer("serviceusage.disable")
def _finish_disable(emu: Emulator, op: dict[str, Any]) -> dict[str, Any]:
    services = _apply(emu, op)
    return {"@type": TYPE_PREFIX + "DisableServiceResponse", "service": services[0]}


@completer("serviceusage.batchEnable")
def _finish_batch(emu: Emulator, op: dict[str, Any]) -> dict[str, Any]:
    services = _apply(emu, op)
    return {"@type": TYPE_PREFIX + "BatchEnableServicesResponse", "services": services}
