"""What the front door (local/frontdoor.py) routes to: the Cloud Run services in the store, found
by the host of one of their URLs, with their traffic and whether allUsers may invoke them.

Read-only: the front door asks on every request, so a deploy, a traffic change or an IAM change
applies to the next request, as it does behind Google's front end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import policies
from .local.frontdoor import CLOUD_SUFFIX, Route, Target
from .run.common import REVISION_KIND, SERVICE_KIND

if TYPE_CHECKING:
    from .context import Emulator

INVOKER = "roles/run.invoker"


def _hosts(svc: dict[str, Any]) -> list[str]:
    urls = [*(svc.get("urls") or []), svc.get("uri") or ""]
    return [h for h in (urlsplit(u).hostname or "" for u in urls) if h]


def _seconds(duration: str | None, default: float) -> float:
    try:
        return float((duration or "").removesuffix("s"))
    except ValueError:
        return default


class Services:
    """The front door's :class:`~.local.frontdoor.Directory` over the emulator's store."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def find(self, label: str) -> Route | None:
        """``label`` + ``.run.app`` is one of a service's hosts, or ``label`` is the id of
        exactly one service."""
        by_id = []
        for _, svc in self.emu.store.list(SERVICE_KIND, ""):
            hosts = _hosts(svc)
            if label + CLOUD_SUFFIX in hosts:
                return self._route(svc, hosts)
            if svc["name"].rsplit("/", 1)[-1] == label:
                by_id.append((svc, hosts))
        if len(by_id) == 1:
            return self._route(*by_id[0])
        return None

    def _route(self, svc: dict[str, Any], hosts: list[str]) -> Route:
        template = svc.get("template") or {}
        return Route(
            name=svc["name"],
            cloud_host=hosts[0],
            public=self._public(svc),
            targets=tuple(self._target(svc, t) for t in _served(svc)),
            timeout=_seconds(template.get("timeout"), 300.0),
        )

    def _public(self, svc: dict[str, Any]) -> bool:
        if svc.get("invokerIamDisabled"):
            return True
        policy = policies.get_policy(self.emu, svc["name"])
        return any(
            b.get("role") == INVOKER and "allUsers" in (b.get("members") or [])
            for b in policy.get("bindings") or []
        )

    def _target(self, svc: dict[str, Any], entry: dict[str, Any]) -> Target:
        """A traffic entry, resolved to a ready revision's full name (None: none is)."""
        name: str | None
        if entry.get("revision"):
            name = f"{svc['name']}/revisions/{entry['revision']}"
            rev = self.emu.store.get(REVISION_KIND, name)
            if rev is None or not rev.get("_ready"):
                name = None
        else:
            name = svc.get("latestReadyRevision") or None
        return Target(name, int(entry.get("percent") or 0), entry.get("tag") or "")


def _served(svc: dict[str, Any]) -> list[dict[str, Any]]:
    """The traffic as it is served (``trafficStatuses``: a change moves it when its deploy is
    done), or as asked while no deploy has settled it yet."""
    return list(svc.get("trafficStatuses") or svc.get("traffic") or [])
