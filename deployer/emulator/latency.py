"""The latency model: how long each kind of long-running operation takes.

``duration(kind)`` = the kind's duration (default table below, or an override) x ``time_scale``.
``request_delay`` (seconds, not scaled) is added to every request. Settings live in the store, so
every process on the same state directory agrees.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .store import StateError

if TYPE_CHECKING:
    from .store import Store

#: Typical durations on Google Cloud, in seconds (docs/emulator.md, "Latency: operations take
#: time"). API modules add kinds here; an unknown kind raises KeyError so a typo fails loudly.
DEFAULT_DURATIONS: dict[str, float] = {
    "sql.instance.create": 600.0,
    "sql.instance.update": 60.0,
    "sql.instance.delete": 60.0,
    "sql.database": 10.0,
    "sql.user": 5.0,
    "build": 120.0,
    "run.execution": 30.0,
    "run.service.deploy": 30.0,
    "run.service.delete": 10.0,
    "run.job.update": 2.0,
    "serviceusage.enable": 20.0,
    "artifactregistry.repository.create": 5.0,
    "artifactregistry.repository.delete": 5.0,
    "redis.instance.create": 300.0,
    "redis.instance.update": 120.0,
    "redis.instance.delete": 120.0,
    # eventual-consistency windows
    "iam.sa.propagation": 60.0,
    "iam.secret_grant.propagation": 120.0,
    "storage.bucket.visibility": 0.0,
}

_KIND = "_emulator"
_KEY = "latency"


def _seconds(name: str, value: Any) -> float:
    """A time scale or a duration: a finite number >= 0 (0: at once); ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} {value!r} is not a finite number")
    if value < 0:
        raise ValueError(f"{name} {value!r} is below 0")
    return float(value)


def _check(settings: Any) -> None:
    """Stored settings as ``set`` writes them; ValueError naming the first bad one."""
    if not isinstance(settings, dict) or not isinstance(settings.get("durations"), dict):
        raise ValueError(f"latency settings {settings!r} are not the emulator's")
    _seconds("time_scale", settings.get("time_scale"))
    _seconds("request_delay", settings.get("request_delay"))
    for kind, value in settings["durations"].items():
        _seconds(f"duration of {kind}", value)


class Latency:
    def __init__(self, store: Store, time_scale: float = 1.0) -> None:
        self._store = store
        self.default_time_scale = _seconds("time_scale", time_scale)

    def _settings(self) -> dict[str, Any]:
        s = self._store.get(_KIND, _KEY)
        if s is None:
            s = {"time_scale": self.default_time_scale, "request_delay": 0.0, "durations": {}}
        return s

    def init(self, *, force: bool = False) -> None:
        """Store this process's time scale when the state has no settings yet, or when
        ``force`` (explicitly asked: ``djdeploy emulator serve --time-scale``). A process that
        merely opens a state directory (``djdeploy status --emulator``) keeps the running one's."""
        with self._store.transaction():
            stored = self._store.get(_KIND, _KEY)
            if stored is not None:
                try:
                    _check(stored)  # a state that outlives its writer is read, not trusted
                except ValueError as exc:
                    raise StateError(f"stored {exc}") from None
                if not force:
                    return
            s = self._settings()
            s["time_scale"] = self.default_time_scale
            self._store.put(_KIND, _KEY, s)

    @property
    def time_scale(self) -> float:
        return float(self._settings()["time_scale"])

    @property
    def request_delay(self) -> float:
        return float(self._settings()["request_delay"])

    def duration(self, kind: str, *, scaled: bool = True) -> float:
        """Seconds an operation of ``kind`` takes now; KeyError for an unknown kind.
        ``scaled=False``: without the time scale (a window that measures real work here, such
        as a locally run process, not Google)."""
        s = self._settings()
        base = s["durations"].get(kind)
        if base is None:
            base = DEFAULT_DURATIONS[kind]
        return float(base) * (float(s["time_scale"]) if scaled else 1.0)

    def get(self) -> dict[str, Any]:
        """{"time_scale", "request_delay", "durations"}: durations are the unscaled table with
        overrides applied."""
        s = self._settings()
        return {
            "time_scale": float(s["time_scale"]),
            "request_delay": float(s["request_delay"]),
            "durations": {**DEFAULT_DURATIONS, **s["durations"]},
        }

    def set(
        self,
        *,
        time_scale: float | None = None,
        request_delay: float | None = None,
        durations: dict[str, float] | None = None,
    ) -> dict[str, Any]:
        """Change settings; ``durations`` overrides (unscaled seconds) merge into the current ones.
        Unknown kinds raise KeyError."""
        for k in durations or {}:
            if k not in DEFAULT_DURATIONS:
                raise KeyError(k)
        with self._store.transaction():
            s = self._settings()
            if time_scale is not None:
                s["time_scale"] = _seconds("time_scale", time_scale)
            if request_delay is not None:
                s["request_delay"] = _seconds("request_delay", request_delay)
            if durations:
                checked = {k: _seconds(f"duration of {k}", v) for k, v in durations.items()}
                s["durations"] = {**s["durations"], **checked}
            self._store.put(_KIND, _KEY, s)
        return self.get()

    def reset(self) -> None:
        self._store.put(
            _KIND,
            _KEY,
            {"time_scale": self.default_time_scale, "request_delay": 0.0, "durations": {}},
        )


def register_duration(kind: str, seconds: float) -> None:
    """Add a kind to the table from an API module (at import time), without editing this file."""
    existing = DEFAULT_DURATIONS.get(kind)
    if existing is not None and existing != float(seconds):
        raise ValueError(f"latency kind {kind!r} already registered with {existing}s")
    DEFAULT_DURATIONS[kind] = float(seconds)
