"""Who may call the service: roles/run.invoker for allUsers when config.service.public, and
removed when it is not (the old module granted it unconditionally).

Read-modify-write with the etag (deployer/gcp/policy.py), no write when the policy is already
right. An organisation policy (domain restricted sharing) refuses allUsers with 400 "... do not
belong to a permitted customer": that is not retryable, and the step says what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from deployer.errors import CloudError, DeployError, InvalidArgument, means_absent
from deployer.steps.base import WRITES, Action, Change, FieldChange, Operation

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud

ROLE = "roles/run.invoker"
MEMBER = "allUsers"
ORG_POLICY_TEXT = "do not belong to a permitted customer"


def _public(policy: dict[str, Any] | None) -> bool:
    for b in (policy or {}).get("bindings") or []:
        if b.get("role") == ROLE and not b.get("condition") and MEMBER in (b.get("members") or []):
            return True
    return False


@dataclass(frozen=True)
class Invoker(Operation):
    config: Config
    name: str = "invoker"
    needs: tuple[str, ...] = ("service",)
    EXPECT: ClassVar[Mapping[Action, str]] = WRITES

    @property
    def resource(self) -> str:
        return f"run service {self.config.names.service} IAM ({ROLE})"

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        try:
            policy = cloud.run.get_iam_policy(self.config.names.service)
        except CloudError as exc:
            if means_absent(exc):  # no service (or the Run API not enabled yet)
                return None
            raise
        return {"policy": policy}

    def diff(self, observed: dict[str, Any] | None) -> Change:
        want = self.config.service.public
        service = self.config.names.service
        if observed is None:
            if want:
                return self.create(
                    f"grant {MEMBER} {ROLE} once service {service} exists",
                    [FieldChange(f"{ROLE}.{MEMBER}", False, True)],
                )
            return self.noop(f"service {service} is absent")
        have = _public(observed["policy"])
        if have == want:
            what = "public: allUsers may invoke it" if want else "private: allUsers may not invoke"
            return self.noop(f"service {service} is {what}")
        reason = (
            f"grant {MEMBER} {ROLE} (service.public = true)"
            if want
            else f"revoke {MEMBER} {ROLE} (service.public = false)"
        )
        return self.update(reason, [FieldChange(f"{ROLE}.{MEMBER}", have, want)])

    def apply(self, cloud: Cloud, change: Change) -> None:
        from deployer.gcp import policy

        service = self.config.names.service
        members = {ROLE: {MEMBER}}

        def get() -> dict[str, Any]:
            return cloud.run.get_iam_policy(service)

        def put(p: dict[str, Any]) -> dict[str, Any]:
            return cloud.run.set_iam_policy(service, p)

        key = cloud.run.service_name(service)
        try:
            if self.config.service.public:
                policy.ensure_bindings(cloud, get=get, set=put, wanted=members, key=key)
            else:
                policy.remove_bindings(cloud, get=get, set=put, unwanted=members, key=key)
        except InvalidArgument as exc:
            if ORG_POLICY_TEXT in str(exc):
                raise DeployError(
                    f"service {service}: the organisation's policy forbids public services "
                    f"(allUsers cannot be granted {ROLE}). Set public = false under [service] "
                    "in djdeploy.toml (or DJDEPLOY_SERVICE_PUBLIC=false) and call the service "
                    "with an identity token, or ask an organisation admin to allow it."
                ) from None
            raise

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        return self.noop("the invoker binding lives on the service and goes with it")
