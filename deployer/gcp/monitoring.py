"""Cloud Monitoring v3 through the discovery client: uptime checks, alert policies and
notification channels.

All three have server-assigned ids (``projects/P/uptimeCheckConfigs/<id>``,
``.../alertPolicies/<number>``, ``.../notificationChannels/<number>``), so there is no name to
GET: callers list the project's resources and find theirs by ``userLabels``. Lists page with
``pageSize``/``pageToken``. A patch sends only the fields named in ``updateMask``.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any, Literal

from deployer.gcp.context import Context, execute

Kind = Literal["uptimeCheckConfigs", "alertPolicies", "notificationChannels"]


class MonitoringApi:
    def __init__(self, cloud: Context) -> None:
        self.cloud = cloud

    def _collection(self, kind: Kind) -> Any:
        return getattr(self.cloud.clients.discovery("monitoring", "v3").projects(), kind)()

    @property
    def _parent(self) -> str:
        return f"projects/{self.cloud.project}"

    def _parent_args(self, kind: Kind) -> dict[str, str]:
        # uptimeCheckConfigs name their project "parent"; the other two call it "name"
        return {"parent" if kind == "uptimeCheckConfigs" else "name": self._parent}

    def _pages(
        self, field: str, key: tuple[Any, ...], request: Callable[[dict[str, Any]], Any]
    ) -> list[dict[str, Any]]:
        """``field`` of every page: ``request`` makes one page's request from its paging
        arguments; each page is a read under ``key`` + its token."""
        out: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            paging = {"pageToken": token} if token else {}
            page = self.cloud.read(execute(request(paging)), key=(*key, token)) or {}
            out.extend(page.get(field, []))
            token = page.get("nextPageToken")
            if not token:
                return out

    def list(self, kind: Kind) -> list[dict[str, Any]]:
        """Every resource of ``kind`` in the project ([] when the API is not enabled)."""
        collection = self._collection(kind)
        args = {**self._parent_args(kind), "pageSize": 100}
        return self._pages(
            kind, ("monitoring.list", kind), lambda paging: collection.list(**args, **paging)
        )

    def create(self, kind: Kind, body: dict[str, Any]) -> dict[str, Any]:
        request = self._collection(kind).create(**self._parent_args(kind), body=body)
        return self.cloud.call(execute(request))

    def patch(
        self, kind: Kind, name: str, body: dict[str, Any], fields: Sequence[str]
    ) -> dict[str, Any]:
        """Set ``fields`` (top-level names, camelCase) of ``name`` from ``body``."""
        request = self._collection(kind).patch(
            name=name, body=body, updateMask=",".join(sorted(fields))
        )
        return self.cloud.call(execute(request))

    def delete(self, kind: Kind, name: str) -> bool:
        """Delete; True when it was there, False when already gone. A notification channel is
        deleted with ``force``: Google then removes it from the policies that name it."""
        args: dict[str, Any] = {"name": name}
        if kind == "notificationChannels":
            args["force"] = True
        done = self.cloud.read(execute(self._collection(kind).delete(**args)))
        return done is not None

    def time_series(self, filter_: str, *, start: str, end: str) -> builtins.list[dict[str, Any]]:
        """Every time series ``filter_`` selects with points between ``start`` and ``end``
        (RFC 3339), its points newest first, as ``projects.timeSeries.list`` gives them raw
        (view FULL, no aggregation); [] when the API is not enabled."""
        series = self.cloud.clients.discovery("monitoring", "v3").projects().timeSeries()
        args = {
            "name": self._parent,
            "filter": filter_,
            "interval_startTime": start,
            "interval_endTime": end,
            "view": "FULL",
        }
        key = ("monitoring.timeSeries", filter_, start, end)
        return self._pages("timeSeries", key, lambda paging: series.list(**args, **paging))

    def alerts(self, filter_: str) -> builtins.list[dict[str, Any]]:
        """The project's alerts (incidents of its alert policies) ``filter_`` selects
        (``projects.alerts.list``, newest opened first)."""
        alerts = self.cloud.clients.discovery("monitoring", "v3").projects().alerts()
        args = {"parent": self._parent, "filter": filter_}
        key = ("monitoring.alerts", filter_)
        return self._pages("alerts", key, lambda paging: alerts.list(**args, **paging))
