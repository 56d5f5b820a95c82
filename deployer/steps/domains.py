"""``domains = [...]``: a Cloud Run domain mapping per custom domain (docs/configuration.md,
"Custom domains").

One step for all the domains, so that ``up`` deletes the mapping of a domain removed from the
config and ``destroy`` every one of ours (labelled like every resource). A mapping points at the
service (``spec.routeName``) with a Google-managed certificate; the API can neither patch nor
replace one, so a mapping that points elsewhere is deleted and created again.

What the user must do is read from the mapping's status, never from message text:

- the DNS records to create (``status.resourceRecords``), shown by ``status``;
- the certificate's state (the conditions Ready, CertificateProvisioned, DomainRoutable):
  ``up`` waits for Cloud Run to answer with the records, not for the certificate, which Google
  issues only once the records resolve (minutes to a day);
- a domain not verified for the deploying account: Ready False, reason ``PermissionDenied``
  (Google's words: "Caller is not authorized to administer the domain"), the failure
  ``Unverified`` says how to verify it. ``up`` creates the mapping again once per run, so a run
  after the verification succeeds.

Cloud Run offers domain mappings in some regions only (``regions.DOMAIN_MAPPING_REGIONS``):
elsewhere the step does nothing and says which route to take instead (a global external
Application Load Balancer with a serverless NEG).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deployer import errors
from deployer.errors import Conflict
from deployer.regions import DOMAIN_MAPPING_REGIONS
from deployer.steps.base import Broken, Change, FieldChange, NotOurs, Operation

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud

#: the Ready condition's reason for a domain the caller may not administer (assumed: Google's
#: reason for it is not documented) and the start of its message (seen from Google, sometimes
#: after a "com.google.net.rpc3.RpcException: " prefix): either one marks it
UNVERIFIED_REASON = "PermissionDenied"
UNVERIFIED_MESSAGE = "Caller is not authorized to administer the domain"
SEARCH_CONSOLE = "https://search.google.com/search-console"
LOAD_BALANCER_DOC = "docs/configuration.md#custom-domains"
CONDITIONS = ("Ready", "CertificateProvisioned", "DomainRoutable")
READY = "ready"


class Unverified(Broken):
    """The deploying account may not administer the domain: only its verified owner can fix
    it, in Google Search Console."""


def conditions(mapping: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The mapping's status conditions by type."""
    status = mapping.get("status") or {}
    return {c.get("type", ""): c for c in status.get("conditions") or []}


def records(mapping: dict[str, Any]) -> str:
    """The DNS records to create, one "TYPE NAME DATA" each ("@" for the apex), "; "-joined."""
    out = []
    for r in (mapping.get("status") or {}).get("resourceRecords") or []:
        out.append(f"{r.get('type', '')} {r.get('name') or '@'} {r.get('rrdata', '')}")
    return "; ".join(out)


def certificate(mapping: dict[str, Any]) -> str:
    """The certificate's state in one phrase, from the conditions."""
    found = conditions(mapping)
    if (found.get("Ready") or {}).get("status") == "True":
        return f"{READY}: certificate provisioned, domain routable"
    states = ", ".join(f"{t} {(found.get(t) or {}).get('status') or 'Unknown'}" for t in CONDITIONS)
    cert = found.get("CertificateProvisioned") or {}
    hint = cert.get("message") or "create the DNS records; Google issues the certificate"
    return f"pending ({states}): {hint}"


@dataclass(frozen=True)
class DomainMappings(Operation):
    config: Config
    name: str = "domains"
    needs: tuple[str, ...] = ("service",)

    @property
    def resource(self) -> str:
        return f"run domain mappings {', '.join(self.config.domains) or '(none)'}"

    @property
    def supported(self) -> bool:
        return self.config.region in DOMAIN_MAPPING_REGIONS

    # -- the step ------------------------------------------------------------------------------

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        if not self.supported:
            return None  # no call: the region has no domain mappings
        wanted = set(self.config.domains)
        found: dict[str, dict[str, Any]] = {}
        for m in cloud.domains.list_mappings():
            meta = m.get("metadata") or {}
            domain = meta.get("name", "")
            if domain in wanted or self._ours(meta):
                found[domain] = m
        return found or None  # None: none of ours, none of the configured domains

    def _ours(self, meta: dict[str, Any]) -> bool:
        labels = meta.get("labels") or {}
        return bool(labels) and self.config.names.owns(labels)

    def diff(self, observed: dict[str, Any] | None) -> Change:
        if not self.supported:
            return self.noop(self.unsupported())
        found = observed or {}
        service = self.config.names.service
        info: dict[str, str] = {}
        fields: list[FieldChange] = []
        waiting: list[str] = []
        failure: Broken | None = None
        for domain in self.config.domains:
            m = found.get(domain)
            if m is None:
                fields.append(FieldChange(f"{domain}.routeName", None, service))
                continue
            if not self._ours(m.get("metadata") or {}):
                return self.refuse(NotOurs(self._not_ours(domain)))
            route = (m.get("spec") or {}).get("routeName")
            if route != service:
                fields.append(FieldChange(f"{domain}.routeName", route, service))
                continue
            ready = conditions(m).get("Ready") or {}
            if ready.get("status") == "False":
                failure = failure or self._failure(domain, ready)
                continue
            dns = records(m)
            if not dns:
                waiting.append(domain)
                continue
            info[f"dns {domain}"] = dns
            info[f"certificate {domain}"] = certificate(m)
        stale = sorted(d for d in found if d not in self.config.domains)
        for d in stale:
            fields.append(
                FieldChange(f"{d}.routeName", (found[d].get("spec") or {}).get("routeName"), None)
            )
        if failure is not None:
            return self.update("map the failed domain(s) again", fields, failure=failure, info=info)
        if fields:
            mapped = [f.path.rsplit(".", 1)[0] for f in fields if f.new is not None]
            parts = [
                f"map {', '.join(mapped)}" if mapped else "",
                f"unmap {', '.join(stale)}" if stale else "",
            ]
            verb = self.create if all(f.old is None for f in fields) else self.update
            return verb("; ".join(p for p in parts if p), fields, info=info)
        if waiting:
            return self.wait(
                f"Cloud Run prepares the DNS records of {', '.join(waiting)}", info=info
            )
        done = f"{', '.join(self.config.domains)} mapped to service {service}"
        if all(v.startswith(READY) for k, v in info.items() if k.startswith("certificate ")):
            return self.noop(f"{done}, certificates ready", info=info)
        return self.noop(
            f"{done}: create the DNS records `djdeploy status` lists; Google then issues the "
            "certificates",
            info=info,
        )

    def _not_ours(self, domain: str) -> str:
        return (
            f"domain {domain} has a mapping djdeploy did not make for this tenant: delete it "
            "(gcloud beta run domain-mappings delete) or remove the domain from domains"
        )

    def _failure(self, domain: str, ready: dict[str, Any]) -> Broken:
        if ready.get("reason") == UNVERIFIED_REASON or UNVERIFIED_MESSAGE in (
            ready.get("message") or ""
        ):
            return Unverified(
                f"domain {domain} is not verified for the deploying account: verify it (or a "
                f"parent domain) in Google Search Console ({SEARCH_CONSOLE}) as that account, "
                "or add it as an owner there, then run up again"
            )
        return Broken(f"domain {domain}: {ready.get('message') or ready.get('reason')}")

    def unsupported(self) -> str:
        return (
            f"region {self.config.region} offers no Cloud Run domain mappings: put a global "
            "external Application Load Balancer with a serverless NEG in front of service "
            f"{self.config.names.service} for {', '.join(self.config.domains)} "
            f"({LOAD_BALANCER_DOC})"
        )

    def apply(self, cloud: Cloud, change: Change) -> None:
        service = self.config.names.service
        labels = dict(self.config.names.labels)
        for f in change.fields:
            domain = f.path.rsplit(".", 1)[0]
            if f.old is not None:
                cloud.domains.delete_mapping(domain)
            if f.new is not None:
                self._create(cloud, domain, service, labels)
        if change.failure is not None:  # map the failed ones again: verified since?
            for domain in self.config.domains:
                m = cloud.domains.get_mapping(domain)
                if m is not None and (conditions(m).get("Ready") or {}).get("status") == "False":
                    cloud.domains.delete_mapping(domain)
                    self._create(cloud, domain, service, labels)

    def _create(self, cloud: Cloud, domain: str, service: str, labels: dict[str, str]) -> None:
        try:
            cloud.domains.create_mapping(domain, service=service, labels=labels)
        except Conflict:
            current = cloud.domains.get_mapping(domain)
            if current is None or not self._ours(current.get("metadata") or {}):
                raise errors.NotOurs(self._not_ours(domain)) from None

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        if not self.supported:
            return self.noop(f"region {self.config.region} has no domain mappings")
        gone = []
        for m in cloud.domains.list_mappings():
            meta = m.get("metadata") or {}
            if self._ours(meta):
                cloud.domains.delete_mapping(meta["name"])
                gone.append(meta["name"])
        if not gone:
            return self.noop("no domain mapping of ours")
        return self.deleted(f"deleted domain mapping(s) {', '.join(gone)}")
