"""The service accounts of a deployment: the runtime identity of the service and jobs, the
identity Cloud Build runs as, and, with [[cron]] entries, the identity Cloud Scheduler calls
the Run API as (``scheduler``: it may only run the scheduled commands' jobs, docs/cron.md),
and, with [ci], the identity the deploy-on-push trigger's builds run `djdeploy up` as
(``deployer``: steps/ci.py, docs/ci.md).

Service accounts carry no labels: ours are recognised by their description, which names
djdeploy, the tenant and the app (DESCRIPTION, written and read here only: an account of
another tenant or app is never adopted, as ``Names.owns`` decides for labelled resources).
A new account is eventually consistent (GET answers 404 for a while, and IAM refuses bindings
naming it): the step WAITs until GET answers for every account; an account the list shows but
GET does not is "created, not visible yet".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deployer import errors
from deployer.errors import Conflict
from deployer.steps.base import Change, FieldChange, NotOurs, Operation

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud

ROLES = ("runtime", "build")

#: the description that marks an account as ours (service accounts have no labels)
DESCRIPTION = "djdeploy {role} service account of tenant {tenant} (app {app}); managed by djdeploy"
_DESCRIPTION_RE = re.compile(
    re.escape(DESCRIPTION)
    .replace(re.escape("{role}"), "(?:runtime|build|scheduler|deployer)")
    .replace(re.escape("{tenant}"), r"(?P<tenant>\S+)")
    .replace(re.escape("{app}"), r"(?P<app>\S+)")
)


@dataclass(frozen=True)
class ServiceAccounts(Operation):
    config: Config
    name: str = "service-accounts"
    needs: Sequence[str] = ("apis",)

    # -- what we want ------------------------------------------------------------------------

    @property
    def roles(self) -> tuple[str, ...]:
        cfg = self.config
        return (*ROLES, *("scheduler",) * bool(cfg.cron), *("deployer",) * (cfg.ci is not None))

    def account_id(self, role: str) -> str:
        n = self.config.names
        return {
            "runtime": n.runtime_sa_id,
            "build": n.build_sa_id,
            "scheduler": n.scheduler_sa_id,
            "deployer": n.deployer_sa_id,
        }[role]

    def email(self, role: str) -> str:
        return f"{self.account_id(role)}@{self.config.project}.iam.gserviceaccount.com"

    def display_name(self, role: str) -> str:
        what = {
            "runtime": "Cloud Run runtime",
            "build": "Cloud Build",
            "scheduler": "Cloud Scheduler",
            "deployer": "deployer (CI)",
        }[role]
        return f"djdeploy {self.config.tenant}/{self.config.app} {what}"

    def description(self, role: str) -> str:
        return DESCRIPTION.format(role=role, tenant=self.config.tenant, app=self.config.app)

    def is_ours(self, account: dict[str, Any]) -> bool:
        """Its description is DESCRIPTION for our tenant and app."""
        m = _DESCRIPTION_RE.match(account.get("description") or "")
        return m is not None and (m["tenant"], m["app"]) == (self.config.tenant, self.config.app)

    @property
    def resource(self) -> str:
        return "service accounts " + ", ".join(self.email(r) for r in self.roles)

    def not_ours_message(self, role: str) -> str:
        return (
            f"service account {self.email(role)} exists but was not created by "
            "djdeploy for this tenant: delete it or choose another tenant/app"
        )

    # -- the protocol ------------------------------------------------------------------------

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        found: dict[str, Any] = {}
        listed: set[str] | None = None
        for role in self.roles:
            account = cloud.iam.get_service_account(self.email(role))
            if account is None:
                if listed is None:
                    listed = {a.get("email", "") for a in cloud.iam.list_service_accounts()}
                if self.email(role) in listed:
                    account = {"email": self.email(role), "visible": False}
            found[role] = account
        if all(v is None for v in found.values()):
            return None
        return found

    def diff(self, observed: dict[str, Any] | None) -> Change:
        observed = observed or {}
        fields: list[FieldChange] = []
        waiting: list[str] = []
        create = False
        for role in self.roles:
            account = observed.get(role)
            if account is None:
                create = True
                fields.append(FieldChange(f"{role}.email", None, self.email(role)))
                continue
            if account.get("visible") is False:
                waiting.append(self.email(role))
                continue
            if not self.is_ours(account):
                return self.refuse(NotOurs(self.not_ours_message(role)))
            if account.get("displayName") != self.display_name(role):
                fields.append(
                    FieldChange(
                        f"{role}.displayName", account.get("displayName"), self.display_name(role)
                    )
                )
        if create:
            return self.create("service accounts missing", fields)
        if fields:
            return self.update("service accounts differ", fields)
        if waiting:
            return self.wait(
                f"waiting for new service account(s) to become visible: {', '.join(waiting)}"
            )
        *head, last = self.roles
        return self.noop(
            f"{', '.join(head)} and {last} service accounts exist and match",
            info={f"{r}_sa": self.email(r) for r in self.roles},
        )

    def apply(self, cloud: Cloud, change: Change) -> None:
        for f in change.fields:
            role, _, attr = f.path.partition(".")
            if attr == "email":
                self._create(cloud, role)
            elif attr == "displayName":
                cloud.iam.patch_service_account(
                    self.email(role), {"displayName": self.display_name(role)}
                )

    def _create(self, cloud: Cloud, role: str) -> None:
        try:
            cloud.iam.create_service_account(
                self.account_id(role), self.display_name(role), self.description(role)
            )
        except Conflict:
            # it exists: ours (a retried create, or a previous run) or someone else's
            account = cloud.iam.get_service_account(self.email(role))
            if account is not None and not self.is_ours(account):
                raise errors.NotOurs(self.not_ours_message(role)) from None
            # not visible yet, or ours: the engine re-observes and waits

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        deleted: list[str] = []
        kept: list[str] = []
        for role in self.roles:
            account = cloud.iam.get_service_account(self.email(role))
            if account is not None and not self.is_ours(account):
                kept.append(self.email(role))  # never delete what we did not create
                continue
            if cloud.iam.delete_service_account(self.email(role)):
                deleted.append(self.email(role))
        if kept:
            done = f"deleted {', '.join(deleted)}; " if deleted else ""
            return self.noop(f"{done}kept {', '.join(kept)}: not created by djdeploy")
        if not deleted:
            return self.noop("service accounts already gone")
        return self.deleted(f"deleted {', '.join(deleted)}")
