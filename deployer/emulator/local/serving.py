"""Cloud Run revisions served locally: each revision that receives traffic runs one instance (a
process listening on a free loopback port, ``PORT`` set), Ready once its startup probe passes,
restarted when it exits or its liveness probe fails (docs/emulator.md, "Jobs and services").

One monitor thread per instance performs the probes as Cloud Run does: the startup probe
(the template's ``httpGet`` / ``tcpSocket``, or Cloud Run's default: a TCP connection to the
port, one attempt for up to 240 s), each attempt bounded by ``timeoutSeconds``; it is tried from
the start and every half second, so an instance is Ready as soon as it answers, and fails when it
has not answered within ``initialDelaySeconds + periodSeconds x failureThreshold``, the time Cloud
Run gives it. Then the liveness probe, as Cloud Run performs it. Nothing here knows the APIs.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .processes import OnLine, Process, Spec, Supervisor

HOST = "127.0.0.1"
STARTING, READY, FAILED, STOPPED = "starting", "ready", "failed", "stopped"
#: Cloud Run's verdicts: a failed HTTP startup probe; no connection to the port (the default
#: TCP probe), the container having exited or never listened
PROBE_FAILED = (
    "The user-provided container failed the configured startup probe checks. Logs for this "
    "revision might contain more information."
)
LISTEN_FAILED = (
    "The user-provided container failed to start and listen on the port defined provided by the "
    "PORT={port} environment variable within the allocated timeout. This can happen when the "
    "port is misconfigured or if the timeout is too short. The health check timeout can be "
    "extended. Logs for this revision might contain more information."
)
#: a monitor's step when no probe period applies (a process that exits is noticed this soon)
TICK_SECONDS = 0.1
#: how often a starting instance's startup probe is tried at least (real seconds)
EAGER_PERIOD = 0.5


@dataclass(frozen=True)
class Probe:
    """A Cloud Run probe: HTTP GET ``path`` (None: a TCP connection) on the instance's port."""

    path: str | None = None
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    failure_threshold: int = 3

    @classmethod
    def from_template(cls, probe: Mapping[str, Any] | None, *, startup: bool) -> Probe | None:
        """The probe a container's ``startupProbe`` / ``livenessProbe`` describes, with Cloud
        Run's defaults; without one: the default TCP startup probe, no liveness probe."""
        if not probe:
            if startup:
                return cls(path=None, period=240.0, timeout=240.0, failure_threshold=1)
            return None
        http_get = probe.get("httpGet")
        path = (http_get.get("path") or "/") if isinstance(http_get, Mapping) else None
        return cls(
            path=path,
            initial_delay=float(probe.get("initialDelaySeconds") or 0),
            period=float(probe.get("periodSeconds") or 10),
            timeout=float(probe.get("timeoutSeconds") or 1),
            failure_threshold=int(probe.get("failureThreshold") or 3),
        )

    def check(self, port: int, alive: Callable[[], bool]) -> bool:
        """One attempt: an HTTP status in 200-399, or a connection within the timeout."""
        if self.path is None:
            deadline = time.monotonic() + self.timeout
            while alive():  # the default probe keeps trying to connect within its timeout
                with contextlib.suppress(OSError):
                    socket.create_connection((HOST, port), timeout=1).close()
                    return True
                if time.monotonic() > deadline:
                    return False
                time.sleep(TICK_SECONDS)
            return False
        conn = http.client.HTTPConnection(HOST, port, timeout=self.timeout)
        try:
            conn.request("GET", self.path, headers={"User-Agent": "GoogleHC/1.0"})
            return 200 <= conn.getresponse().status < 400
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()


@dataclass(frozen=True)
class InstancePlan:
    """How to run a revision: ``spec(port)`` is its process, ``on_line`` its output's
    destination, ``on_event(severity, text)`` the platform's own lines (probes, exits)."""

    spec: Callable[[int], Spec]
    startup: Probe
    liveness: Probe | None
    on_line: OnLine
    on_event: Callable[[str, str], None]
    container_name: str
    container_port: int = 8080


class Instance:
    """A revision's one instance; restarted on exit or a failed liveness probe once Ready."""

    def __init__(self, supervisor: Supervisor, plan: InstancePlan, port: int) -> None:
        self.supervisor = supervisor
        self.plan = plan
        self.port = port
        self.state = STARTING
        self.message = ""  # why it failed (the startup probe's verdict)
        self.restarts = 0
        self.process: Process | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._monitor, daemon=True)
        self._thread.name = f"djdeploy-instance-{port}"
        self._thread.start()

    def _alive(self) -> bool:
        return self.process is not None and self.process.alive() and not self._stop.is_set()

    def _start_process(self) -> None:
        try:
            self.process = self.supervisor.start(
                self.plan.spec(self.port), on_line=self.plan.on_line
            )
        except OSError as exc:  # nothing to run: the startup probe fails
            self.plan.on_event("ERROR", f"exec: {exc.strerror}: {exc.filename}")
            self.process = None
            return
        if self._stop.is_set():  # stopped while it started
            self.supervisor.stop(self.process)

    def _startup(self) -> bool:
        """Run the startup probe on a fresh process; whether it passed. Tried from the start
        and at least every EAGER_PERIOD, not first after initialDelaySeconds: an instance is
        Ready as soon as it answers, and fails when it has not answered within the time Cloud
        Run would give it (initialDelaySeconds + periodSeconds x failureThreshold)."""
        probe = self.plan.startup
        self._start_process()
        deadline = time.monotonic() + probe.initial_delay + probe.period * probe.failure_threshold
        attempts = 0
        while self._alive():
            began = time.monotonic()
            attempts += 1
            if probe.check(self.port, self._alive):
                what = f'path "{probe.path}"' if probe.path else f"port {self.port}"
                kind = "HTTP" if probe.path else "TCP"
                self.plan.on_event(
                    "INFO",
                    f"STARTUP {kind} probe succeeded after {attempts} attempt"
                    f'{"s" if attempts > 1 else ""} for container "{self.plan.container_name}" '
                    f"on {what}.",
                )
                return True
            if time.monotonic() >= deadline:
                break
            wait = min(probe.period, EAGER_PERIOD) - (time.monotonic() - began)
            if self._stop.wait(max(0.0, min(wait, deadline - time.monotonic()))):
                return False
        return False

    def _monitor(self) -> None:
        while not self._stop.is_set():
            if not self._startup():
                if self._stop.is_set():
                    return
                self._fail()
                return
            self.state = READY
            self._live()
            if self._stop.is_set():
                return
            self.restarts += 1
            self.state = STARTING

    def _live(self) -> None:
        """While Ready: return when the process exited or the liveness probe failed (the
        process then stopped)."""
        probe = self.plan.liveness
        failures = 0
        next_check = time.monotonic() + (probe.initial_delay if probe else 0.0)
        while not self._stop.wait(TICK_SECONDS):
            proc = self.process
            if proc is None or not proc.alive():
                code = proc.poll() if proc is not None else None
                self.plan.on_event("ERROR" if code else "INFO", f"Container called exit({code}).")
                if proc is not None:
                    self.supervisor.forget(proc)
                return
            if probe is None or time.monotonic() < next_check:
                continue
            next_check = time.monotonic() + probe.period
            if probe.check(self.port, self._alive):
                failures = 0
                continue
            failures += 1
            if failures >= probe.failure_threshold:
                self.plan.on_event(
                    "ERROR",
                    f"LIVENESS {'HTTP' if probe.path else 'TCP'} probe failed {failures} times "
                    f'consecutively for container "{self.plan.container_name}". The instance '
                    "will be restarted.",
                )
                self.supervisor.stop(proc)
                return

    def _fail(self) -> None:
        proc = self.process
        if proc is not None:
            self.supervisor.stop(proc)
        if self.plan.startup.path is not None:
            self.message = PROBE_FAILED
        else:
            self.message = LISTEN_FAILED.format(port=self.plan.container_port)
        self.plan.on_event("ERROR", self.message)
        self.state = FAILED

    def stop(self, *, wait: bool) -> None:
        self._stop.set()
        self.state = STOPPED
        proc = self.process
        if proc is not None:
            self.supervisor.stop(proc, wait=wait)
        if wait:
            self._thread.join()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class LocalServing:
    """The instances running here, by revision name."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self._instances: dict[str, Instance] = {}
        self._lock = threading.Lock()

    def start(self, revision: str, plan: Callable[[], InstancePlan]) -> Instance:
        """The instance of ``revision``, started from ``plan()`` unless it runs (or failed)."""
        with self._lock:
            found = self._instances.get(revision)
            if found is None or found.state == STOPPED:
                found = Instance(self.supervisor, plan(), free_port())
                self._instances[revision] = found
            return found

    def get(self, revision: str) -> Instance | None:
        with self._lock:
            return self._instances.get(revision)

    def address(self, revision: str) -> tuple[str, int] | None:
        found = self.get(revision)
        if found is None or found.state != READY:
            return None
        return HOST, found.port

    def stop(self, revision: str) -> None:
        """Stop the revision's instance (in the background: called inside a store
        transaction)."""
        with self._lock:
            found = self._instances.pop(revision, None)
        if found is not None:
            found.stop(wait=False)

    def revisions(self) -> list[str]:
        with self._lock:
            return sorted(self._instances)

    def stop_all(self) -> None:
        with self._lock:
            instances, self._instances = list(self._instances.values()), {}
        threads = [threading.Thread(target=i.stop, kwargs={"wait": True}) for i in instances]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
