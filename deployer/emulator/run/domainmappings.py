"""Cloud Run Admin v1 domain mappings (``domains.cloudrun.com/v1``, Knative shape): the state
and behaviour, no HTTP. The rules are listed in the package docstring.

A mapping's ``status`` is worked out when it is read, from its age in scaled time: Cloud Run
first checks the caller may administer the domain and that the route (service) exists, then
publishes the DNS records, then (once DNS resolves, which the emulator takes as given) issues
the certificate.

Domain ownership: every domain counts as verified for the caller except
``unverified.example`` and its subdomains (``UNVERIFIED``), whose mappings end Ready False,
reason PermissionDenied, with Google's message.

What is confirmed, and from where (public reports of Google's answers; Google's reference
documents neither reasons nor messages of DomainMapping conditions):

- an unverified domain is not refused at create: the mapping is created and ends Ready False
  with the message ``_NOT_AUTHORIZED`` (terraform-provider-google issue 19053, 2024, and
  terraform-docs-samples PR 158, 2022: "Error waiting to create DomainMapping: resource is in
  failed state "Ready:False", message: Caller is not authorized to administer the domain
  ..."). The 2022 answer quoted the domain ('example.com'), the 2024 one did not and was
  prefixed by Google's internal "com.google.net.rpc3.RpcException: "; the emulator gives the
  2024 words without that prefix. Its reason, PermissionDenied, is an assumption (terraform
  shows only the state and the message);
- a route (service) that does not exist: Ready False, reason RouteMissing
  (terraform-provider-google issue 5173's debug log); the message is the emulator's;
- the status's fields (conditions, resourceRecords, mappedRouteName, observedGeneration: the
  v1 REST reference, namespaces.domainmappings); the condition types Ready,
  CertificateProvisioned and DomainRoutable as public reports show them; the CertificatePending
  reason and its message while the certificate is pending are assumptions.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from ..errors import AlreadyExists, InvalidArgument, NotFound
from ..formats import rfc3339
from ..latency import register_duration
from ..projects import resolve
from ..serviceusage import require_enabled
from .common import API, SERVICE_KIND

if TYPE_CHECKING:
    from ..context import Emulator

KIND = "run.domainmapping"
API_VERSION = "domains.cloudrun.com/v1"
#: the emulator's reserved unverified domain: it and its subdomains are not the caller's
UNVERIFIED = "unverified.example"
RECONCILE = "run.domainmapping.reconcile"  # ownership and route checked, DNS records published
CERTIFICATE = "run.domainmapping.certificate"  # Google: about 15 minutes once DNS resolves
register_duration(RECONCILE, 5.0)
register_duration(CERTIFICATE, 900.0)

_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
#: Google's answers for an apex domain (A and AAAA) and a subdomain (a CNAME)
_APEX_A = ("216.239.32.21", "216.239.34.21", "216.239.36.21", "216.239.38.21")
_APEX_AAAA = (
    "2001:4860:4802:32::15",
    "2001:4860:4802:34::15",
    "2001:4860:4802:36::15",
    "2001:4860:4802:38::15",
)
_CNAME = "ghs.googlehosted.com."
_CERT_PENDING = (
    "Waiting for certificate provisioning. You must configure your DNS records for "
    "certificate issuance to begin."
)
#: Ready False for a domain the caller may not administer (confirmed: module docstring)
_NOT_AUTHORIZED = (
    "Caller is not authorized to administer the domain {domain}. If you own {domain}, you can "
    "obtain authorization by verifying ownership of the domain, or any of its parent domains, "
    "via the Webmaster Central portal: "
    "https://www.google.com/webmasters/verification/verification?domain={domain}. We "
    "recommend verifying ownership of the largest scope you wish to use with subdomains (eg. "
    "verify 'example.com' if you wish to map 'subdomain.example.com')."
)


def _unverified(domain: str) -> bool:
    return domain == UNVERIFIED or domain.endswith("." + UNVERIFIED)


def _dns_records(domain: str) -> list[dict[str, str]]:
    """What Cloud Run asks for: A and AAAA records at an apex (two labels), else a CNAME of
    the first label (its name is relative to the apex)."""
    labels = domain.split(".")
    if len(labels) == 2:
        return [{"type": "A", "rrdata": ip} for ip in _APEX_A] + [
            {"type": "AAAA", "rrdata": ip} for ip in _APEX_AAAA
        ]
    return [{"type": "CNAME", "name": ".".join(labels[:-2]), "rrdata": _CNAME}]


def _condition(kind: str, status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    cond: dict[str, Any] = {"type": kind, "status": status}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


class DomainMappings:
    """The domain mappings of one emulator's Cloud Run, keyed ``{project id}/{domain}``."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def namespace(self, namespace: str) -> tuple[str, str]:
        """(project id, number) of a namespace (a project id or number); 403 when Run is off."""
        pid, number = resolve(self.emu, namespace)
        require_enabled(self.emu, pid, API)
        return pid, number

    def list(self, namespace: str) -> list[dict[str, Any]]:
        pid, number = self.namespace(namespace)
        return [self._render(m, pid, number) for _, m in self.emu.store.list(KIND, f"{pid}/")]

    def get(self, namespace: str, domain: str) -> dict[str, Any]:
        pid, number = self.namespace(namespace)
        return self._render(self._stored(pid, domain), pid, number)

    def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        pid, number = self.namespace(namespace)
        meta = body.get("metadata") or {}
        domain = meta.get("name") or ""
        route = (body.get("spec") or {}).get("routeName") or ""
        if not _HOST.match(domain):
            raise InvalidArgument(f"metadata.name: '{domain}' is not a valid domain name.")
        if meta.get("namespace") not in (None, pid, number):
            raise InvalidArgument("metadata.namespace must match the namespace of the request.")
        if not route:
            raise InvalidArgument("spec.routeName: a domain mapping needs a route (a service).")
        with self.emu.store.transaction():
            if self.emu.store.get(KIND, f"{pid}/{domain}") is not None:
                raise AlreadyExists(f"Domain mapping for '{domain}' already exists.")
            stored = {
                "domain": domain,
                "labels": dict(meta.get("labels") or {}),
                "annotations": dict(meta.get("annotations") or {}),
                "spec": {
                    "routeName": route,
                    "certificateMode": (body.get("spec") or {}).get("certificateMode")
                    or "AUTOMATIC",
                },
                "uid": str(uuid.uuid4()),
                "created": self.emu.clock(),
            }
            self.emu.store.put(KIND, f"{pid}/{domain}", stored)
        return self._render(stored, pid, number)

    def delete(self, namespace: str, domain: str) -> dict[str, Any]:
        pid, _ = self.namespace(namespace)
        stored = self._stored(pid, domain)
        self.emu.store.delete(KIND, f"{pid}/{domain}")
        return {
            "status": "Success",
            "details": {
                "name": domain,
                "group": "domains.cloudrun.com",
                "kind": "domainmappings",
                "uid": stored["uid"],
            },
        }

    # -- the status, from the mapping's age ---------------------------------------------------

    def _stored(self, pid: str, domain: str) -> dict[str, Any]:
        stored = self.emu.store.get(KIND, f"{pid}/{domain}")
        if stored is None:
            raise NotFound(
                f"Resource '{domain}' of kind 'DOMAIN_MAPPING' in project '{pid}' does not exist."
            )
        return stored

    def _route_exists(self, pid: str, route: str) -> bool:
        suffix = f"/services/{route}"
        return any(
            key.endswith(suffix)
            for key, _ in self.emu.store.list(SERVICE_KIND, f"projects/{pid}/locations/")
        )

    def _status(self, stored: dict[str, Any], pid: str) -> dict[str, Any]:
        age = self.emu.clock() - float(stored["created"])
        latency = self.emu.latency
        unknown = [
            _condition(t, "Unknown") for t in ("Ready", "CertificateProvisioned", "DomainRoutable")
        ]
        if age < latency.duration(RECONCILE):
            return {"observedGeneration": 1, "conditions": unknown}
        domain, route = stored["domain"], stored["spec"]["routeName"]
        if _unverified(domain):
            message = _NOT_AUTHORIZED.format(domain=domain)
            return {
                "observedGeneration": 1,
                "conditions": [_condition("Ready", "False", "PermissionDenied", message)],
            }
        if not self._route_exists(pid, route):
            message = f"The route '{route}' does not exist."
            return {
                "observedGeneration": 1,
                "conditions": [_condition("Ready", "False", "RouteMissing", message)],
            }
        status: dict[str, Any] = {
            "observedGeneration": 1,
            "mappedRouteName": route,
            "resourceRecords": _dns_records(domain),
        }
        if age < latency.duration(RECONCILE) + latency.duration(CERTIFICATE):
            pending = ("Unknown", "CertificatePending", _CERT_PENDING)
            status["conditions"] = [
                _condition("Ready", *pending),
                _condition("CertificateProvisioned", *pending),
                _condition("DomainRoutable", "True"),
            ]
        else:
            status["conditions"] = [
                _condition(t, "True") for t in ("Ready", "CertificateProvisioned", "DomainRoutable")
            ]
        return status

    def _render(self, stored: dict[str, Any], pid: str, number: str) -> dict[str, Any]:
        domain = stored["domain"]
        meta: dict[str, Any] = {
            "name": domain,
            "namespace": number,
            "selfLink": f"/apis/{API_VERSION}/namespaces/{number}/domainmappings/{domain}",
            "uid": stored["uid"],
            "resourceVersion": "1",
            "generation": 1,
            "creationTimestamp": rfc3339(float(stored["created"])),
        }
        if stored["labels"]:
            meta["labels"] = stored["labels"]
        if stored["annotations"]:
            meta["annotations"] = stored["annotations"]
        return {
            "apiVersion": API_VERSION,
            "kind": "DomainMapping",
            "metadata": meta,
            "spec": stored["spec"],
            "status": self._status(stored, pid),
        }
