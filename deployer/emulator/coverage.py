"""docs/emulator-coverage.md: every method of each emulated API, served or not.

    python -m deployer.emulator.coverage > docs/emulator-coverage.md

The page is generated from two sources, never written by hand: the emulator's route table (what
is served) and Google's discovery documents shipped in google-api-python-client (what exists).
Each route is matched to the discovery method whose path template it fills (its variables taken
as one sample segment each) in the API its URL belongs to (``discovery.PREFIXES``). A method no
route reaches is listed as not served; a route no method describes (the media download URL,
resumable upload chunks, emulator-only resources) is listed apart. Fidelity notes are data here,
next to the generator (:data:`NOTES`), keyed by method id. tests/emulator/test_coverage_doc.py
fails when the committed page differs from a fresh one.
"""

from __future__ import annotations

import re
import sys

from .discovery import apis_for, find_method, load_doc, methods
from .routing import Route, RouteTable
from .server import load_routers

COMMAND = "python -m deployer.emulator.coverage > docs/emulator-coverage.md"

#: The APIs the emulator serves, as (discovery name, version), in the page's order.
APIS: tuple[tuple[str, str], ...] = (
    ("run", "v2"),
    ("run", "v1"),
    ("sqladmin", "v1"),
    ("secretmanager", "v1"),
    ("storage", "v1"),
    ("cloudbuild", "v1"),
    ("artifactregistry", "v1"),
    ("iam", "v1"),
    ("cloudresourcemanager", "v3"),
    ("serviceusage", "v1"),
    ("monitoring", "v3"),
    ("cloudscheduler", "v1"),
    ("logging", "v2"),
    ("redis", "v1"),
)

#: Fidelity notes by discovery method id: where a served method departs from Google, or what of
#: Google's behaviour it models that a reader would not assume. A note on a method the emulator
#: does not serve says why it is left out. Keep each to one line; docs/emulator.md has the detail.
NOTES: dict[str, str] = {
    "run.namespaces.domainmappings.create": (
        "status from the mapping's scaled age (latency `run.domainmapping.reconcile`, "
        "`.certificate`); `unverified.example` and its subdomains are not the caller's"
    ),
    "logging.entries.list": (
        "projects/P only; the filter subset of docs/emulator.md (other terms a 400 naming them)"
    ),
    "logging.entries.write": "Run and Cloud Build write their own entries on completion too",
    "redis.projects.locations.instances.getAuthString": (
        "a new UUID each time AUTH turns on; `{}` while it is off; `***` in the transcript"
    ),
    "redis.projects.locations.instances.patch": (
        "`authEnabled` too (gcloud's --enable-auth); a local redis-server's requirepass follows"
    ),
    "logging.entries.tail": "a streaming gRPC method: not served over REST; poll entries.list",
    "run.projects.locations.services.create": (
        "long-running (latency `run.service.deploy`); a failed revision via outcomes"
    ),
    "run.projects.locations.services.patch": "a new revision only when the template changes",
    "run.projects.locations.workerPools.create": (
        "long-running (latency `run.service.deploy`); with local execution a new revision "
        "runs as processes, failed when one exits before `run.workerpool.start`"
    ),
    "run.projects.locations.jobs.run": "an execution (latency `run.execution`); outcomes fail it",
    "sql.instances.insert": "one operation at a time per instance (409 operationInProgress)",
    "sql.instances.patch": "settingsVersion checked (412 staleData)",
    "sql.instances.delete": "refused while deletion protection is on",
    "secretmanager.projects.secrets.addVersion": "payload checksum (crc32c) checked when sent",
    "storage.objects.insert": "media and multipart uploads; resumable uploads outside the table",
    "storage.objects.get": "`alt=media` downloads too",
    "cloudbuild.projects.builds.create": (
        "QUEUED, WORKING, then SUCCESS after latency `build`; pushes the image to the registry"
    ),
    "iam.projects.serviceAccounts.create": (
        "not visible to IAM bindings for `iam.sa.propagation` (eventual consistency)"
    ),
    "cloudresourcemanager.projects.setIamPolicy": "etag checked (409 ABORTED on a stale one)",
    "serviceusage.services.batchEnable": "long-running (latency `serviceusage.enable`)",
}

_ROUTE_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(=\*\*)?\}")


def sample_path(template: str) -> str:
    """A concrete path a route serves: each variable filled with one sample segment."""
    return _ROUTE_VAR.sub("x", template)


def _owner(route: Route) -> list[tuple[str, str]]:
    """(version, discovery method id) of each method whose template this route fills, in the
    API(s) its URL belongs to (:data:`discovery.PREFIXES`, the table tests/contract.py checks
    traffic by). Run v1 and v2 share method ids, so the version is part of the key."""
    path = sample_path(route.template)
    found = (
        (version, find_method(api, version, route.method, path))
        for api, version in apis_for(route.method, path)
    )
    return [(version, hit[0]["id"]) for version, hit in found if hit is not None]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(table: RouteTable) -> str:
    """The whole page (Markdown) for the routes in ``table``."""
    served: dict[tuple[str, str], list[Route]] = {}
    outside: list[Route] = []
    for route in table.routes:
        owners = _owner(route)
        if not owners:
            outside.append(route)
        for method_id in owners:
            served.setdefault(method_id, []).append(route)

    lines = [
        "# Emulator coverage: every method of each emulated API",
        "",
        "Generated from the emulator's route table and the discovery documents shipped in",
        "google-api-python-client; do not edit by hand. After adding or removing a route, or",
        "changing a note (`NOTES` in `deployer/emulator/coverage.py`), regenerate it:",
        "",
        f"    {COMMAND}",
        "",
        "`tests/emulator/test_coverage_doc.py` fails while this page is stale. A served method is",
        "one the emulator routes; what it validates and how it behaves is in",
        "[emulator.md](emulator.md), and its traffic is checked against the same discovery",
        "documents by `tests/contract.py`.",
        "",
        "| API | version | methods | served |",
        "|---|---|---|---|",
    ]
    sections: list[str] = []
    for api, version in APIS:
        doc = load_doc(api, version)
        all_methods = sorted(methods(api, version), key=lambda m: m["id"])
        count = sum(1 for m in all_methods if (version, m["id"]) in served)
        lines.append(f"| [{api}](#{api}-{version}) | {version} | {len(all_methods)} | {count} |")
        sections += [
            "",
            f"## {api} {version}",
            "",
            f"{doc.get('title', api)}: {count} of {len(all_methods)} methods served.",
            "",
            "| method | HTTP | served | notes |",
            "|---|---|---|---|",
        ]
        for m in all_methods:
            routes = served.get((version, m["id"]), [])
            where = "<br>".join(f"`{r.template}`" for r in routes) if routes else "no"
            path = m.get("flatPath") or m.get("path", "")
            note = _cell(NOTES.get(m["id"], ""))
            sections.append(
                f"| `{m['id']}` | {m['httpMethod']} `{_cell(path)}` | {where} | {note} |"
            )
    lines += sections
    lines += [
        "",
        "## Routes outside the discovery documents",
        "",
        "Served, but described by no discovery method (media downloads, resumable upload",
        "chunks, emulator-only resources):",
        "",
    ]
    lines += [f"- `{r.method} {r.template}`" for r in outside] or ["- none"]
    return "\n".join(lines) + "\n"


def current() -> str:
    """The page for the emulator's API modules as they are now."""
    return render(RouteTable(load_routers()))


def main() -> None:
    sys.stdout.write(current())


if __name__ == "__main__":
    main()
