"""Service Usage v1: which APIs are enabled, and enabling them (never waiting)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from deployer.gcp.context import Context, execute

BATCH_GET = 30  # services:batchGet takes at most 30 names
BATCH_ENABLE = 20  # services:batchEnable takes at most 20 ids


class ServiceUsageApi:
    def __init__(self, cloud: Context) -> None:
        self.cloud = cloud

    def _services(self) -> Any:
        return self.cloud.clients.discovery("serviceusage", "v1").services()

    def enabled(self, services: Iterable[str]) -> set[str]:
        """Which of ``services`` are enabled in the project."""
        wanted = sorted(set(services))
        parent = f"projects/{self.cloud.project}"
        out: set[str] = set()
        for i in range(0, len(wanted), BATCH_GET):
            names = [f"{parent}/services/{s}" for s in wanted[i : i + BATCH_GET]]
            resp = self.cloud.call(
                execute(self._services().batchGet(parent=parent, names=names)),
                key=("services.batchGet", *names),
            )
            for svc in resp.get("services", []):
                if svc.get("state") == "ENABLED":
                    out.add(svc["name"].rsplit("/", 1)[-1])
        return out

    def enable(self, services: Iterable[str]) -> list[str]:
        """Start enabling ``services`` (batchEnable); returns the operation names, never
        waits (the engine re-observes with enabled())."""
        ids = sorted(set(services))
        parent = f"projects/{self.cloud.project}"
        ops: list[str] = []
        for i in range(0, len(ids), BATCH_ENABLE):
            body = {"serviceIds": ids[i : i + BATCH_ENABLE]}
            op = self.cloud.call(execute(self._services().batchEnable(parent=parent, body=body)))
            ops.append(op.get("name", ""))
        return ops
