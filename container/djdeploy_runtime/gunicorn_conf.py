"""gunicorn configuration for Cloud Run (``gunicorn -c python:djdeploy_runtime.gunicorn_conf``).

Sized from the CPUs this container may use; shuts down within Cloud Run's 10 s SIGTERM window.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from gunicorn.glogging import Logger

from djdeploy_runtime.jsonlog import logging_config


class ForwardedForLogger(Logger):
    """The access log's client address (%(h)s) is X-Forwarded-For's first address, the client
    as Cloud Run's front end saw it, rather than the front end's own address."""

    def atoms(self, resp, req, environ, request_time):  # type: ignore[no-untyped-def]
        atoms = super().atoms(resp, req, environ, request_time)
        forwarded = environ.get("HTTP_X_FORWARDED_FOR", "").split(",")[0].strip()
        if forwarded:
            atoms["h"] = forwarded
        return atoms


def available_cpus(cgroup_cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs from the cgroup v2 quota when there is one, else the scheduler's affinity mask."""
    try:
        quota, period = cgroup_cpu_max.read_text().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _positive_int(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


bind = f"0.0.0.0:{_positive_int('PORT', 8080)}"
# One process per CPU, several threads each: Django spends most of a request waiting on the
# database, and Cloud Run sends up to 80 concurrent requests to an instance by default.
workers = _positive_int("WEB_CONCURRENCY", available_cpus())
threads = _positive_int("GUNICORN_THREADS", 8)
worker_class = "gthread"
# Cloud Run enforces the request timeout itself; a gunicorn worker timeout would only kill
# long requests early (Google's own guidance for gunicorn on Cloud Run).
timeout = 0
# Cloud Run sends SIGTERM and kills the container 10 s later: finish in-flight requests first.
graceful_timeout = 8
keepalive = 5
# Import the project once in the master: a broken project fails at start, not per worker.
preload_app = True
# Only Cloud Run's front end reaches the container; trust its X-Forwarded-* headers.
forwarded_allow_ips = "*"
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# No control socket: $HOME (/app) is read-only for the django user and nothing would use it.
control_socket_disable = True
accesslog = "-"
errorlog = "-"
logger_class = ForwardedForLogger
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
logconfig_dict = logging_config()
