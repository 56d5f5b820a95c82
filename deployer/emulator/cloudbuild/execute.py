"""Cloud Build's local execution (docs/emulator.md, "Local execution", "Builds"): with execution
on (``emu.local.builds``), a build of a storageSource archive runs for real
(:mod:`deployer.emulator.local.build`) and its image is the directory its digest names.

The build's operation starts it (keyed by build id: an emulator restarted mid-build starts it
again) and stays pending (NotYet) until it ends; its whole log is then written to Cloud Logging
in Cloud Build's shape (resource type ``build``, label build_id, the ``cloudbuild`` log). A
build without a storageSource (API-only tests send none) stays simulated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..formats import rfc3339
from ..local.build import BuildRequest, BuildResult
from ..logging.entries import SERVICE, LogEntries
from ..operations import NotYet
from ..serviceusage import is_enabled
from ..storage.errors import NotFound as ObjectNotFound
from ..storage.objects import Objects
from ..storage.preconditions import Conditions

if TYPE_CHECKING:
    from ..context import Emulator

#: how often (clock seconds) the operation looks again at a build under way
POLL_SECONDS = 0.5
#: the Docker builder's status line when a step fails (Cloud Build's)
STEP_FAILED = "step exited with non-zero status: 1"


def build_args(build: dict[str, Any]) -> dict[str, str]:
    """The ``--build-arg NAME=VALUE`` of the build's docker step, by name."""
    args = [str(a) for a in ((build.get("steps") or [{}])[0].get("args") or [])]
    out: dict[str, str] = {}
    for i, arg in enumerate(args):
        pair = None
        if arg == "--build-arg" and i + 1 < len(args):
            pair = args[i + 1]
        elif arg.startswith("--build-arg="):
            pair = arg.split("=", 1)[1]
        if pair is not None:
            name, _, value = pair.partition("=")
            out[name] = value
    return dict(sorted(out.items()))


def local_result(emu: Emulator, build: dict[str, Any], *, timeout: float) -> BuildResult | None:
    """How the build ran here; None when it is simulated (execution off, or no storage
    source). Raises NotYet while it runs (the first call starts it)."""
    builds = emu.local.builds
    source = (build.get("source") or {}).get("storageSource")
    if builds is None or not source:
        return None
    result = builds.result(build["id"])
    if result is None and not builds.started(build["id"]):
        archive = _archive(emu, build, source)
        if archive is None:
            where = f"gs://{source['bucket']}/{source['object']}"
            detail = f"could not resolve source: {where}: no such object"
            return BuildResult("FAILURE", "", [], failure=detail)
        request = BuildRequest(archive, build_args(build), timeout, engine=builds.engine)
        builds.start(build["id"], request)
        result = builds.result(build["id"])
    if result is None:
        raise NotYet(POLL_SECONDS)
    return result


def _archive(emu: Emulator, build: dict[str, Any], source: dict[str, Any]) -> bytes | None:
    """The source object's bytes, at the generation the build resolved when it was created."""
    resolved = (build.get("sourceProvenance") or {}).get("resolvedStorageSource") or {}
    generation = resolved.get("generation")
    try:
        doc = Objects(emu).get_object(
            source["bucket"],
            source["object"],
            generation=int(generation) if generation else None,
            conditions=Conditions(),
        )
    except ObjectNotFound:
        return None
    return Objects.media(doc)


def write_log(
    emu: Emulator, build: dict[str, Any], result: BuildResult, *, project_id: str
) -> None:
    """The build's whole log, as Cloud Build prints it: the source fetched, every step's
    output, the push, DONE or ERROR with the failure."""
    source = build["source"]["storageSource"]
    generation = ((build.get("sourceProvenance") or {}).get("resolvedStorageSource") or {}).get(
        "generation"
    )
    where = f"gs://{source['bucket']}/{source['object']}" + (f"#{generation}" if generation else "")
    start = float(build["_startAt"])
    # never before the start: a build run here may end before its scaled queue time is over
    end = max(emu.clock(), start)
    began = result.log[0][0] if result.log else 0.0
    head = [f'starting build "{build["id"]}"', "FETCHSOURCE", f"Fetching storage object: {where}"]
    # the steps' lines at the times they were printed, from the build's start and never past
    # its end (the emulator's clock may be scaled or virtual); entries of one timestamp keep
    # the order they are written in
    timed = [(start, text) for text in [*head, "BUILD"]]
    timed += [(min(max(start, start + (at - began)), end), text) for at, text in result.log]
    lines: list[str] = []
    if build["status"] == "SUCCESS":
        lines.append("PUSH")
        for image in (build.get("results") or {}).get("images", []):
            lines += [f"Pushing {image['name']}", f"{image['name']}: digest: {image['digest']}"]
        lines.append("DONE")
    elif build["status"] == "TIMEOUT":
        lines += ["TIMEOUT", "ERROR: context deadline exceeded"]
    else:
        lines += ["ERROR", f"ERROR: {build.get('statusDetail') or build['status']}"]
    timed += [(end, text) for text in lines]
    log_name = f"projects/{project_id}/logs/cloudbuild"
    entries = [
        {"logName": log_name, "severity": "INFO", "timestamp": rfc3339(at), "textPayload": text}
        for at, text in timed
    ]
    if is_enabled(emu, project_id, SERVICE):
        LogEntries(emu).write(
            entries,
            resource={
                "type": "build",
                "labels": {"project_id": project_id, "build_id": build["id"]},
            },
        )


def failure_message(result: BuildResult) -> str:
    """What a failed step says in statusDetail: the builder's exit line, then its log tail."""
    return "\n".join([result.failure or STEP_FAILED, *result.tail])
