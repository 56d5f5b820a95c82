"""Cloud SQL Admin v1 through the discovery client (google-api-python-client).

Speaks the API's own JSON dicts. Every call goes through ``cloud.call`` with
``execute(num_retries=0)`` so the one retry policy is the only one (it also waits out Cloud
SQL's 409 ``operationInProgress``); reads that may 404 go through ``cloud.read``. Mutations
return the started ``sql#operation`` and never wait on it: the engine re-observes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from deployer import errors
from deployer.gcp import deletes, retry
from deployer.gcp.context import Context
from deployer.secret import Secret


class SqlApi:
    def __init__(self, cloud: Context) -> None:
        self.cloud = cloud

    @property
    def _api(self) -> Any:
        return self.cloud.clients.discovery("sqladmin", "v1")

    @property
    def _p(self) -> str:
        return self.cloud.project

    def _call(self, make: Any) -> Any:
        return self.cloud.call(lambda: make(self._api).execute(num_retries=0))

    def _read(self, make: Any, *, key: Hashable | None = None) -> Any:
        return self.cloud.read(lambda: make(self._api).execute(num_retries=0), key=key)

    # -- instances -----------------------------------------------------------------------------

    def get_instance(self, name: str) -> dict[str, Any] | None:
        return self._read(  # type: ignore[no-any-return]
            lambda a: a.instances().get(project=self._p, instance=name), key=("sql.instance", name)
        )

    def list_instances(self, filter: str | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"project": self._p}
            if filter:
                kwargs["filter"] = filter
            if token:
                kwargs["pageToken"] = token
            page = self._call(lambda a, kw=kwargs: a.instances().list(**kw))
            items.extend(page.get("items", []))
            token = page.get("nextPageToken")
            if not token:
                return items

    def insert_instance(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call(lambda a: a.instances().insert(project=self._p, body=body))  # type: ignore[no-any-return]

    def patch_instance(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call(  # type: ignore[no-any-return]
            lambda a: a.instances().patch(project=self._p, instance=name, body=body)
        )

    def patch_settings(
        self, name: str, make_patch: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any] | None:
        """Read the instance's settings, patch it with ``make_patch(settings)`` and the
        ``settingsVersion`` that was read; the started operation, or None when the instance is
        gone. One retried call: a 412 ``staleData`` (the settings changed since the read)
        redoes the whole read-modify-write, as do transient errors."""

        def attempt() -> dict[str, Any]:
            api = self._api
            inst = api.instances().get(project=self._p, instance=name).execute(num_retries=0)
            settings = inst.get("settings") or {}
            body = {
                "settings": {
                    **make_patch(settings),
                    "settingsVersion": settings.get("settingsVersion"),
                }
            }
            patch = api.instances().patch(project=self._p, instance=name, body=body)
            return patch.execute(num_retries=0)  # type: ignore[no-any-return]

        try:
            return self.cloud.call(attempt, retry_on=retry.SQL_SETTINGS)
        except errors.NotFound:
            return None

    def delete_instance(self, name: str) -> dict[str, Any] | None:
        """Start deleting; None when the instance was already gone."""
        return self._started(
            f"instance {name}",
            self._read(lambda a: a.instances().delete(project=self._p, instance=name)),
        )

    def insert_backup(self, instance: str, description: str = "") -> dict[str, Any]:
        """Start an on-demand backup. Not safe to repeat (each insert is a new backup run):
        MaybeApplied when it may have started one unanswered (steps/sql.py finds the final
        backup by its description)."""
        body = {"description": description} if description else {}
        clients = self.cloud.clients

        def send() -> dict[str, Any]:
            request = self._api.backupRuns().insert(project=self._p, instance=instance, body=body)
            request.headers.update(clients.deadline())
            return request.execute(num_retries=0)  # type: ignore[no-any-return]

        return self.cloud.call(send, once=clients.request_timeout)

    def list_backups(self, instance: str) -> list[dict[str, Any]]:
        page = self._call(lambda a: a.backupRuns().list(project=self._p, instance=instance))
        return list(page.get("items", []))

    def list_managed(self) -> list[dict[str, Any]]:
        """Instances labelled managed-by=djdeploy: [{"kind": "sql-instance", "name", "labels"}]."""
        out = []
        for inst in self.list_instances("settings.userLabels.managed-by:djdeploy"):
            labels = (inst.get("settings") or {}).get("userLabels") or {}
            if labels.get("managed-by") == "djdeploy":
                out.append({"kind": "sql-instance", "name": inst["name"], "labels": labels})
        return out

    # -- databases -----------------------------------------------------------------------------

    def get_database(self, instance: str, name: str) -> dict[str, Any] | None:
        return self._read(  # type: ignore[no-any-return]
            lambda a: a.databases().get(project=self._p, instance=instance, database=name),
            key=("sql.database", instance, name),
        )

    def insert_database(self, instance: str, name: str) -> dict[str, Any]:
        body = {"name": name, "charset": "UTF8", "collation": "en_US.UTF8"}
        return self._call(  # type: ignore[no-any-return]
            lambda a: a.databases().insert(project=self._p, instance=instance, body=body)
        )

    def delete_database(self, instance: str, name: str) -> dict[str, Any] | None:
        """Start deleting; None when the database (or its instance) was already gone."""
        return self._started(
            f"database {name} on instance {instance}",
            self._read(
                lambda a: a.databases().delete(project=self._p, instance=instance, database=name)
            ),
        )

    # -- users ---------------------------------------------------------------------------------

    def get_user(self, instance: str, name: str) -> dict[str, Any] | None:
        return self._read(  # type: ignore[no-any-return]
            lambda a: a.users().get(project=self._p, instance=instance, name=name),
            key=("sql.user", instance, name),
        )

    def insert_user(self, instance: str, name: str, password: Secret) -> dict[str, Any]:
        def make(a: Any) -> Any:
            body = {"name": name, "password": password.reveal()}
            return a.users().insert(project=self._p, instance=instance, body=body)

        return self._call(make)  # type: ignore[no-any-return]

    def set_password(self, instance: str, name: str, password: Secret) -> dict[str, Any]:
        def make(a: Any) -> Any:
            body = {"name": name, "password": password.reveal()}
            return a.users().update(project=self._p, instance=instance, name=name, body=body)

        return self._call(make)  # type: ignore[no-any-return]

    def delete_user(self, instance: str, name: str) -> dict[str, Any] | None:
        """Start deleting; None when the user (or its instance) was already gone."""
        return self._started(
            f"user {name} on instance {instance}",
            self._read(lambda a: a.users().delete(project=self._p, instance=instance, name=name)),
        )

    # -- operations ----------------------------------------------------------------------------

    def _started(self, what: str, op: dict[str, Any] | None) -> dict[str, Any] | None:
        """``op``, the delete of ``what`` just started (None: it was gone), told to
        gcp/deletes.py with how to read its error."""
        if op is None:
            return None
        op_id = str(op["name"])

        def reason() -> str | None:
            done = self._read(
                lambda a: a.operations().get(project=self._p, operation=op_id),
                key=("sql.operation", op_id),
            )
            if done is None or done.get("status") != "DONE" or not done.get("error"):
                return None
            failed = done["error"].get("errors") or [{}]
            return "; ".join(
                str(e.get("message") or e.get("code") or "no reason given") for e in failed
            )

        deletes.started("Cloud SQL", what, reason)
        return op

    def pending_operations(self, instance: str) -> list[dict[str, Any]]:
        """Operations on ``instance`` that are not DONE (newest first); [] when it is gone."""
        page = self._read(
            lambda a: a.operations().list(project=self._p, instance=instance, maxResults=20),
            key=("sql.operations", instance),
        )
        if page is None:
            return []
        return [op for op in page.get("items", []) if op.get("status") != "DONE"]
