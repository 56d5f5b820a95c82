"""Revision and task templates: the defaults Run's server fills in, and the synchronous (400)
checks a create or update must pass."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from .. import policies
from ..errors import InvalidArgument

if TYPE_CHECKING:
    from ..context import Emulator

#: env names Cloud Run sets itself in a service's containers: a template may not set them
RESERVED_ENV = ("PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION")
#: a probe's defaults when the template leaves them out
_PROBE_DEFAULT_TIMEOUT, _PROBE_DEFAULT_PERIOD = 1, 10


def compute_sa(number: str) -> str:
    return f"{number}-compute@developer.gserviceaccount.com"


def _container_defaults(c: dict[str, Any], *, service: bool) -> None:
    res = c.setdefault("resources", {})
    limits = res.setdefault("limits", {})
    limits.setdefault("cpu", "1000m")
    limits.setdefault("memory", "512Mi")
    if service:
        res.setdefault("cpuIdle", True)
        ports = c.setdefault("ports", [{"containerPort": 8080}])
        for p in ports:
            p.setdefault("name", "http1")
            p.setdefault("containerPort", 8080)
        port = ports[0]["containerPort"] if ports else 8080
        probe = c.setdefault(
            "startupProbe",
            {"timeoutSeconds": 240, "periodSeconds": 240, "failureThreshold": 1},
        )
        if not any(k in probe for k in ("httpGet", "tcpSocket", "grpc")):
            probe["tcpSocket"] = {"port": port}
        for p in (probe, c.get("livenessProbe") or {}):
            if "httpGet" in p:
                p["httpGet"].setdefault("path", "/")
                p["httpGet"].setdefault("port", port)


def revision_template(t: dict[str, Any], number: str) -> dict[str, Any]:
    """A service's revision template with the server's defaults."""
    t = copy.deepcopy(t)
    containers = t.get("containers") or []
    if not containers:
        raise InvalidArgument("template.containers: at least one container must be specified.")
    for c in containers:
        if not c.get("image"):
            raise InvalidArgument("template.containers[0].image: Field is required.")
        _container_defaults(c, service=True)
    t.setdefault("timeout", "300s")
    t.setdefault("serviceAccount", compute_sa(number))
    t.setdefault("maxInstanceRequestConcurrency", 80)
    t.setdefault("scaling", {}).setdefault("maxInstanceCount", 100)
    return t


def task_template(t: dict[str, Any], number: str) -> dict[str, Any]:
    """A job's task template with the server's defaults."""
    t = copy.deepcopy(t)
    containers = t.get("containers") or []
    if not containers:
        raise InvalidArgument("template.template.containers: at least one container is required.")
    for c in containers:
        if not c.get("image"):
            raise InvalidArgument("template.template.containers[0].image: Field is required.")
        _container_defaults(c, service=False)
    t.setdefault("maxRetries", 3)
    t.setdefault("timeout", "600s")
    t.setdefault("serviceAccount", compute_sa(number))
    return t


def check_service_account(emu: Emulator, template: dict[str, Any]) -> None:
    """A user-managed runtime service account must exist and be visible (400 as Google answers
    for an account that does not exist or was created less than ``iam.sa.propagation`` ago);
    Google's own accounts (Compute default, ...) are taken as existing."""
    email = template.get("serviceAccount") or ""
    if not email or not policies._user_managed(email):
        return
    sa = emu.store.get(policies.SA_KIND, email)
    if sa is None or float(sa.get("_visibleAt", 0.0)) > emu.clock():
        raise InvalidArgument(f"Service account {email} does not exist.")


#: where a template's fields are named in Run's messages (a job's task template is nested)
REVISION_SPEC, TASK_SPEC = "spec.template.spec", "spec.template.spec.template.spec"


def check(template: dict[str, Any], *, spec: str, service: bool = False) -> None:
    """The synchronous (400) checks of a revision / task template (named ``spec`` in the
    messages) that matter to a deployment: Cloud Storage volumes need the second generation
    (services: jobs and worker pools have no other), a probe's timeout may not exceed its
    period, reserved env names are refused (services)."""
    if service and template.get("executionEnvironment") != "EXECUTION_ENVIRONMENT_GEN2":
        for vi, vol in enumerate(template.get("volumes") or []):
            if "gcs" in vol:
                raise InvalidArgument(
                    f"{spec}.volumes[{vi}].csi: Cloud Storage volumes are only supported in "
                    "the second generation execution environment. Set the execution "
                    "environment to gen2 (executionEnvironment EXECUTION_ENVIRONMENT_GEN2).",
                )
    for ci, c in enumerate(template.get("containers") or []):
        for field, proto in (
            ("startupProbe", "startup_probe"),
            ("livenessProbe", "liveness_probe"),
        ):
            probe = c.get(field)
            if not probe:
                continue
            timeout = int(probe.get("timeoutSeconds") or _PROBE_DEFAULT_TIMEOUT)
            period = int(probe.get("periodSeconds") or _PROBE_DEFAULT_PERIOD)
            if timeout > period:
                raise InvalidArgument(
                    f"{spec}.containers[{ci}].{proto}.timeout_seconds: must be less than or "
                    f"equal to period_seconds ({timeout} > {period}).",
                )
        if service:
            names = [e.get("name") for e in c.get("env") or []]
            reserved = [n for n in RESERVED_ENV if n in names]
            if reserved:
                raise InvalidArgument(
                    f"{spec}.containers[{ci}].env: The following reserved env names were "
                    f"provided: {', '.join(reserved)}. These values are automatically set by "
                    "the system.",
                )
