"""Cloud Run's local execution (docs/emulator.md, "Jobs and services"): with execution on and an
image built here (``<state>/images/<digest>``), a job execution's tasks, a serving revision's
instance and a worker pool's instances are real processes (:mod:`deployer.emulator.local.jobs`,
:mod:`.serving`, :mod:`.workers`); an image not built here keeps the simulation (said once on
stderr).

This module turns the API's records into what the realizers run: the image Artifact Registry
names, the env with each secret resolved at its pinned version (in the process's env only), the
volumes (/cloudsql, GCS) as directories, Cloud Run's own env (PORT, K_SERVICE,
CLOUD_RUN_TASK_INDEX...), and the lines written to Cloud Logging.
"""

from __future__ import annotations

import base64
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..artifactregistry.names import parse_digest_ref
from ..artifactregistry.repositories import TAG_KIND
from ..latency import register_duration
from ..local.container import ContainerRun, short_dir
from ..local.image import Image, find_image
from ..local.jobs import ExecutionRun, TaskPlan
from ..local.processes import OnLine, Spec
from ..local.serving import InstancePlan, Probe
from ..local.workers import PoolPlan, Trial
from ..logging.container import (
    container_line,
    job_resource,
    platform_line,
    revision_resource,
    worker_pool_resource,
)
from ..projects import resolve
from ..secretmanager.versions import Versions
from .readiness import _secret_ref

if TYPE_CHECKING:
    from ..context import Emulator

#: images already said to be simulated (one stderr line each)
_SIMULATED: set[str] = set()
SIMULATED = (
    "djdeploy emulator: {what} simulated: its image {image} was not built by this emulator "
    "(local execution runs images its Cloud Build made)"
)


def _digest(emu: Emulator, image: str) -> str | None:
    """The digest an Artifact Registry reference (by tag or by digest) names, if pushed."""
    if "@" in image:
        parsed = parse_digest_ref(image)
        return None if parsed is None else parsed[4]
    last = image.rsplit("/", 1)[-1]
    record = emu.store.get(TAG_KIND, image if ":" in last else image + ":latest")
    return None if record is None else str(record["digest"])


def local_image(emu: Emulator, template: dict[str, Any], what: str) -> Image | None:
    """The finished local image of the template's (first) container, when execution is on and
    this emulator built it; else None, said once per image on stderr."""
    if not emu.local.enabled or emu.local.dir is None:
        return None
    image = ((template.get("containers") or [{}])[0]).get("image", "")
    digest = _digest(emu, image)
    found = find_image(emu.local.dir, digest) if digest else None
    if found is None and image not in _SIMULATED:
        _SIMULATED.add(image)
        print(SIMULATED.format(what=what, image=image), file=sys.stderr)
    return found


def _secret(emu: Emulator, pid: str, ref: dict[str, Any]) -> str:
    project, secret, version = _secret_ref(ref, pid)
    project_id, number = resolve(emu, project)
    data = Versions(emu).access(project_id, number, secret, version)["_data"]
    return base64.b64decode(data).decode()


def _env(emu: Emulator, pid: str, container: dict[str, Any]) -> dict[str, str]:
    """The container's env, secrets resolved (the template passed its readiness checks)."""
    out: dict[str, str] = {}
    for var in container.get("env") or []:
        ref = (var.get("valueSource") or {}).get("secretKeyRef")
        out[var["name"]] = _secret(emu, pid, ref) if ref else str(var.get("value", ""))
    return out


def _mounts(emu: Emulator, template: dict[str, Any], container: dict[str, Any]) -> dict[str, Path]:
    """mountPath -> local directory, for the volumes local execution maps (Cloud SQL, GCS);
    with the directories the Cloud SQL layout's links point into, at their own path (what a
    runner that really mounts, local/buildah.py, mounts too)."""
    volumes = {v.get("name"): v for v in template.get("volumes") or []}
    out: dict[str, Path] = {}
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount.get("name")) or {}
        where: Path | None = None
        if "cloudSqlInstance" in volume:
            where = emu.local.cloudsql_dir()
            if where is not None:
                names = [str(n) for n in volume["cloudSqlInstance"].get("instances") or []]
                where = short_dir(where, names=names)
                out.update(emu.local.socket_dirs(names))
        elif "gcs" in volume:
            where = emu.local.bucket_dir(volume["gcs"].get("bucket", ""))
        if where is not None:
            out[mount["mountPath"]] = where
    return out


def _runner(
    emu: Emulator, template: dict[str, Any], image: Image, *, pid: str
) -> Callable[[dict[str, str], str], Spec]:
    """How the template's (first) container of ``image`` runs here: (what Cloud Run adds to
    its env, what names it) -> its process; the env (secrets resolved) and mounts read once."""
    container = template["containers"][0]
    env = _env(emu, pid, container)
    mounts = _mounts(emu, template, container)

    def spec(platform: dict[str, str], what: str) -> Spec:
        return emu.local.process_spec(
            ContainerRun(image, container, what, env=env, platform_env=platform, mounts=mounts)
        )

    return spec


def _timeout(value: Any, default: float) -> float:
    try:
        return float(str(value).removesuffix("s"))
    except ValueError:
        return default


def _logger(emu: Emulator, where: tuple[str, dict[str, Any], dict[str, str]]) -> OnLine:
    def on_line(stream: str, line: str) -> None:
        container_line(emu, where, stream=stream, line=line)

    return on_line


# -- jobs ----------------------------------------------------------------------------------------


def execution_run(emu: Emulator, execution: dict[str, Any], *, pid: str) -> ExecutionRun | None:
    """The local run of ``execution`` (started now unless it runs), or None: simulated."""
    jobs = emu.local.jobs
    if jobs is None:
        return None
    found = jobs.get(execution["name"])
    if found is not None:
        return found
    template = execution["template"]
    image = local_image(emu, template, f"job {execution['job']}")
    if image is None:
        return None
    return jobs.run(execution["name"], lambda: _task_plan(emu, execution, image, pid=pid))


def _task_plan(emu: Emulator, execution: dict[str, Any], image: Image, *, pid: str) -> TaskPlan:
    template = execution["template"]
    name = execution["name"]
    eid = name.rsplit("/", 1)[-1]
    run = _runner(emu, template, image, pid=pid)
    count = int(execution["taskCount"])

    def spec(index: int, attempt: int) -> Spec:
        platform = {
            "CLOUD_RUN_JOB": execution["job"],
            "CLOUD_RUN_EXECUTION": eid,
            "CLOUD_RUN_TASK_INDEX": str(index),
            "CLOUD_RUN_TASK_ATTEMPT": str(attempt),
            "CLOUD_RUN_TASK_COUNT": str(count),
        }
        return run(platform, f"{name}/tasks/{eid}-task{index}")

    def on_exit(index: int, attempt: int, code: int, timed_out: bool) -> None:
        where = job_resource(name, index, attempt)
        if timed_out:
            platform_line(emu, where, severity="ERROR", text=TIMEOUT)
        platform_line(
            emu, where, severity="ERROR" if code else "INFO", text=f"Container called exit({code})."
        )

    return TaskPlan(
        task_count=count,
        parallelism=int(execution.get("parallelism") or 0),
        max_retries=int(template.get("maxRetries") or 0),
        timeout=_timeout(template.get("timeout"), 600.0),
        spec=spec,
        on_line=lambda index, attempt: _logger(emu, job_resource(name, index, attempt)),
        on_exit=on_exit,
    )


#: a task attempt that outlived the task timeout (Cloud Run's message)
TIMEOUT = "The configured timeout was reached."


# -- services ------------------------------------------------------------------------------------


def revision_instance(emu: Emulator, rev: dict[str, Any], *, pid: str) -> str | None:
    """Start the revision's instance unless it runs; its state ("starting", "ready", "failed":
    see :mod:`deployer.emulator.local.serving`), or None: simulated."""
    serving = emu.local.serving
    if serving is None:
        return None
    found = serving.get(rev["name"])
    if found is None:
        image = local_image(emu, rev, f"service {rev['service']}")
        if image is None:
            return None
        found = serving.start(rev["name"], lambda: _instance_plan(emu, rev, image, pid=pid))
    return found.state


def instance_failure(emu: Emulator, revision: str) -> str:
    serving = emu.local.serving
    found = serving.get(revision) if serving is not None else None
    return found.message if found is not None else ""


def _instance_plan(emu: Emulator, rev: dict[str, Any], image: Image, *, pid: str) -> InstancePlan:
    container = rev["containers"][0]
    name = rev["name"]
    run = _runner(emu, rev, image, pid=pid)
    env = {var.get("name") for var in container.get("env") or []}  # the template's own
    cpu = str(((container.get("resources") or {}).get("limits") or {}).get("cpu") or "1")
    cpus = math.ceil(float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu))
    where = revision_resource(name)

    def spec(port: int) -> Spec:
        platform = {
            "PORT": str(port),
            "K_SERVICE": rev["service"],
            "K_REVISION": name.rsplit("/", 1)[-1],
            "K_CONFIGURATION": rev["service"],
        }
        # the container's own gunicorn binds 0.0.0.0: locally, loopback only (the front door
        # is the way in); its workers follow the CPU limit, as the cgroup quota says on Cloud Run
        if "GUNICORN_CMD_ARGS" not in env:
            platform["GUNICORN_CMD_ARGS"] = f"--bind 127.0.0.1:{port}"
        if "WEB_CONCURRENCY" not in env:
            platform["WEB_CONCURRENCY"] = str(max(1, cpus))
        return run(platform, name)

    return InstancePlan(
        spec=spec,
        startup=Probe.from_template(container.get("startupProbe"), startup=True) or Probe(),
        liveness=Probe.from_template(container.get("livenessProbe"), startup=False),
        on_line=_logger(emu, where),
        on_event=lambda severity, text: platform_line(emu, where, severity=severity, text=text),
        container_name=container.get("name") or rev["service"],
        container_port=int(((container.get("ports") or [{}])[0]).get("containerPort") or 8080),
    )


def stop_instance(emu: Emulator, revision: str) -> None:
    serving = emu.local.serving
    if serving is not None:
        serving.stop(revision)


def retire(emu: Emulator, service: str, serving: set[str]) -> None:
    """Stop the instances of ``service``'s revisions that no longer receive traffic."""
    local = emu.local.serving
    if local is None:
        return
    for revision in local.revisions():
        if revision.startswith(service + "/revisions/") and revision not in serving:
            local.stop(revision)


# -- worker pools --------------------------------------------------------------------------------

#: on a worker pool's record: the template of its latest ready revision (what its instances run
#: while a later deploy fails)
READY_TEMPLATE = "_readyTemplate"


#: how long each instance of a worker pool's new revision must stay up before the revision is
#: Ready: seconds of the emulator's clock, not scaled (it measures a real process: a wrong
#: command takes seconds to fail whatever the time scale); a latency kind, so tests set it
WORKER_START = "run.workerpool.start"
register_duration(WORKER_START, 10.0)


def pool_trial(emu: Emulator, pool: dict[str, Any], *, pid: str) -> Trial | None:
    """Try the worker pool's latest created revision here, ``scaling.manualInstanceCount``
    instances beside the ready revision's (started unless they run): where the trial stands;
    None when it is simulated (execution off, or an image not built here)."""
    workers = emu.local.workers
    revision, template = pool.get("latestCreatedRevision"), pool["template"]
    if workers is None or not revision:
        return None
    image = local_image(emu, template, f"worker pool {pool['name'].rsplit('/', 1)[-1]}")
    if image is None:
        return None
    return workers.trial(
        pool["name"],
        revision=revision,
        count=int((pool.get("scaling") or {}).get("manualInstanceCount") or 0),
        plan=lambda: _pool_plan(emu, revision, template, image, pid=pid),
    )


def abandon_trial(emu: Emulator, pool: dict[str, Any]) -> None:
    """Stop the instances of the worker pool's failed latest created revision."""
    workers = emu.local.workers
    if workers is not None:
        workers.abandon(pool["name"], pool.get("latestCreatedRevision") or "")


def pool_instances(emu: Emulator, pool: dict[str, Any], *, pid: str) -> None:
    """Run the worker pool's latest ready revision here, ``scaling.manualInstanceCount``
    instances (those of its previous revision stop); none when its image was not built here."""
    workers = emu.local.workers
    revision, template = pool.get("latestReadyRevision"), pool.get(READY_TEMPLATE)
    if workers is None or not revision or template is None:
        return
    image = local_image(emu, template, f"worker pool {pool['name'].rsplit('/', 1)[-1]}")
    if image is None:
        workers.stop(pool["name"])
        return
    count = int((pool.get("scaling") or {}).get("manualInstanceCount") or 0)
    workers.run(
        pool["name"],
        revision=revision,
        count=count,
        plan=lambda: _pool_plan(emu, revision, template, image, pid=pid),
    )


def _pool_plan(
    emu: Emulator, revision: str, template: dict[str, Any], image: Image, *, pid: str
) -> PoolPlan:
    run = _runner(emu, template, image, pid=pid)
    platform = {
        "CLOUD_RUN_WORKER_POOL": revision.split("/")[5],
        "CLOUD_RUN_REVISION": revision.rsplit("/", 1)[-1],
    }

    def spec(index: int) -> Spec:
        return run(platform, f"{revision}/instances/{index}")

    def on_event(index: int, severity: str, text: str) -> None:
        platform_line(emu, worker_pool_resource(revision, index), severity=severity, text=text)

    return PoolPlan(
        spec=spec,
        on_line=lambda index: _logger(emu, worker_pool_resource(revision, index)),
        on_event=on_event,
        clock=emu.clock,
        start_period=emu.latency.duration(WORKER_START, scaled=False),
    )


def stop_pool(emu: Emulator, pool: str) -> None:
    """Stop the worker pool's instances (a deleted pool's)."""
    workers = emu.local.workers
    if workers is not None:
        workers.stop(pool)
