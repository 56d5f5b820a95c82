"""IAM v1 service accounts through the discovery client.

New accounts are eventually consistent: for a while after create, GET answers 404 and
bindings naming the account are refused. Callers (steps/service_accounts.py) wait on GET.
"""

from __future__ import annotations

from typing import Any

from deployer.gcp.context import Context, execute


class IamApi:
    def __init__(self, cloud: Context) -> None:
        self.cloud = cloud

    def _accounts(self) -> Any:
        return self.cloud.clients.discovery("iam", "v1").projects().serviceAccounts()

    def _name(self, email: str) -> str:
        return f"projects/{self.cloud.project}/serviceAccounts/{email}"

    def get_service_account(self, email: str) -> dict[str, Any] | None:
        return self.cloud.read(
            execute(self._accounts().get(name=self._name(email))), key=("iam.account", email)
        )

    def list_service_accounts(self) -> list[dict[str, Any]]:
        """Every service account of the project (the list may show a new account before GET
        does)."""
        out: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"name": f"projects/{self.cloud.project}", "pageSize": 100}
            if token:
                kwargs["pageToken"] = token
            page = self._list_page(kwargs)
            out.extend(page.get("accounts", []))
            token = page.get("nextPageToken")
            if not token:
                return out

    def _list_page(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        page = self.cloud.read(execute(self._accounts().list(**kwargs)))
        return page or {}

    def create_service_account(
        self, account_id: str, display_name: str, description: str
    ) -> dict[str, Any]:
        """Create; 409 (it exists, perhaps not yet visible) raises errors.Conflict."""
        body = {
            "accountId": account_id,
            "serviceAccount": {"displayName": display_name, "description": description},
        }
        return self.cloud.call(
            execute(self._accounts().create(name=f"projects/{self.cloud.project}", body=body))
        )

    def patch_service_account(self, email: str, fields: dict[str, str]) -> dict[str, Any]:
        body = {"serviceAccount": dict(fields), "updateMask": ",".join(sorted(fields))}
        return self.cloud.call(execute(self._accounts().patch(name=self._name(email), body=body)))

    def delete_service_account(self, email: str) -> bool:
        """Delete; True when it was there, False when already gone."""
        done = self.cloud.read(execute(self._accounts().delete(name=self._name(email))))
        return done is not None

    def get_iam_policy(self, email: str) -> dict[str, Any]:
        return self.cloud.call(
            execute(
                self._accounts().getIamPolicy(
                    resource=self._name(email), options_requestedPolicyVersion=3
                )
            )
        )

    def set_iam_policy(self, email: str, policy: dict[str, Any]) -> dict[str, Any]:
        return self.cloud.call(
            execute(
                self._accounts().setIamPolicy(resource=self._name(email), body={"policy": policy})
            )
        )
