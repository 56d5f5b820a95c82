"""The manage job (``<tenant>-<app>-manage``), which `djdeploy manage` creates and runs
(deployer/management.py, docs/manage.md).

`up` never creates, changes or runs it: its definition follows the serving revision at each
`djdeploy manage`. This step only shows it in plan and status, and lets destroy delete it with
the rest of the tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deployer.steps import container_env as ce
from deployer.steps.base import Change, Operation

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud


@dataclass(frozen=True)
class ManageJob(Operation):
    config: Config
    name: str = "manage-job"
    needs: tuple[str, ...] = ("apis",)

    @property
    def resource(self) -> str:
        return f"run job {self.config.names.manage_job}"

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        return cloud.run.get_job(self.config.names.manage_job)

    def diff(self, observed: dict[str, Any] | None) -> Change:
        jid = self.config.names.manage_job
        if observed is None:
            return self.noop(f"no job {jid} yet: `djdeploy manage` creates it")
        if not self.config.names.owns(observed.get("labels")):
            return self.noop(f"job {jid} is not managed by djdeploy: `djdeploy manage` refuses it")
        latest = (observed.get("latestCreatedExecution") or {}).get("name")
        last = f" (last execution {ce.short(latest)})" if latest else ""
        return self.noop(f"job {jid} runs `djdeploy manage` commands{last}")

    def apply(self, cloud: Cloud, change: Change) -> None:
        raise AssertionError("the manage job's step never changes anything in up")

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        jid = self.config.names.manage_job
        current = cloud.run.get_job(jid)
        if current is None:
            return self.noop(f"job {jid} is gone")
        if not self.config.names.owns(current.get("labels")):
            return self.noop(f"kept: job {jid} is not managed by djdeploy")
        cloud.run.delete_job(jid)
        return self.deleted(f"deleted job {jid}")
