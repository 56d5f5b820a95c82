"""Cloud Run domain mappings: the Admin API v1 (``run`` v1, Knative shape) through the
discovery client, on the region's endpoint (``https://{region}-run.googleapis.com``).

A mapping is named by its domain, in the namespace of the project
(``namespaces/{project}/domainmappings/{domain}``). The API has create, get, list and delete
only: a mapping that must point elsewhere is deleted and created again. Create answers at once
with the mapping; Cloud Run then fills ``status`` (its DNS records, and the conditions Ready,
CertificateProvisioned, DomainRoutable) as it works.
"""

from __future__ import annotations

from typing import Any

from deployer.gcp.context import Context, execute

API_VERSION = "domains.cloudrun.com/v1"


class DomainsApi:
    def __init__(self, cloud: Context) -> None:
        self.cloud = cloud

    def _mappings(self) -> Any:
        run = self.cloud.clients.discovery("run", "v1", region=self.cloud.region)
        return run.namespaces().domainmappings()

    @property
    def parent(self) -> str:
        return f"namespaces/{self.cloud.project}"

    def name(self, domain: str) -> str:
        return f"{self.parent}/domainmappings/{domain}"

    def list_mappings(self) -> list[dict[str, Any]]:
        """Every mapping of the project in the region ([] when the API is not enabled)."""
        page = self.cloud.read(execute(self._mappings().list(parent=self.parent))) or {}
        return list(page.get("items") or [])

    def get_mapping(self, domain: str) -> dict[str, Any] | None:
        return self.cloud.read(execute(self._mappings().get(name=self.name(domain))))

    def create_mapping(
        self, domain: str, *, service: str, labels: dict[str, str]
    ) -> dict[str, Any]:
        """Map ``domain`` to ``service`` with a Google-managed certificate; 409 (mapped
        already) raises errors.Conflict."""
        body = {
            "apiVersion": API_VERSION,
            "kind": "DomainMapping",
            "metadata": {"name": domain, "namespace": self.cloud.project, "labels": labels},
            "spec": {"routeName": service, "certificateMode": "AUTOMATIC"},
        }
        request = self._mappings().create(parent=self.parent, body=body)
        return self.cloud.call(execute(request))

    def delete_mapping(self, domain: str) -> bool:
        """Delete; True when it was there, False when already gone."""
        done = self.cloud.read(execute(self._mappings().delete(name=self.name(domain))))
        return done is not None
