"""Cloud Scheduler v1 jobs through the discovery client.

Jobs live in a location (``projects/P/locations/R/jobs/ID``, ours in the deployment's region)
and carry no labels: callers mark ownership in ``description``. A patch sends only the fields
named in ``updateMask``; ``state`` is output only (pause and resume are their own calls, which
djdeploy does not make: a job paused by hand stays paused).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deployer.gcp.context import Context, execute


class SchedulerApi:
    def __init__(self, cloud: Context) -> None:
        self.cloud = cloud

    def _jobs(self) -> Any:
        return self.cloud.clients.discovery("cloudscheduler", "v1").projects().locations().jobs()

    @property
    def parent(self) -> str:
        return f"projects/{self.cloud.project}/locations/{self.cloud.region}"

    def job_name(self, job_id: str) -> str:
        return f"{self.parent}/jobs/{job_id}"

    def list_jobs(self) -> list[dict[str, Any]]:
        """Every job of the location ([] when the API is not enabled)."""
        out: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"parent": self.parent, "pageSize": 500}
            if token:
                kwargs["pageToken"] = token
            request = execute(self._jobs().list(**kwargs))
            page = self.cloud.read(request, key=("scheduler.list", self.parent, token)) or {}
            out.extend(page.get("jobs", []))
            token = page.get("nextPageToken")
            if not token:
                return out

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        return self.cloud.read(execute(self._jobs().get(name=self.job_name(job_id))))

    def create_job(self, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create; 409 (it exists) raises errors.Conflict."""
        job = {**body, "name": self.job_name(job_id)}
        return self.cloud.call(execute(self._jobs().create(parent=self.parent, body=job)))

    def patch_job(self, job_id: str, body: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
        """Set ``fields`` (top-level names, camelCase) from ``body``."""
        request = self._jobs().patch(
            name=self.job_name(job_id), body=body, updateMask=",".join(sorted(fields))
        )
        return self.cloud.call(execute(request))

    def delete_job(self, job_id: str) -> bool:
        """Delete; True when it was there, False when already gone."""
        done = self.cloud.read(execute(self._jobs().delete(name=self.job_name(job_id))))
        return done is not None

    def run_job(self, job_id: str) -> dict[str, Any]:
        """Force a run now (the schedule is unchanged)."""
        return self.cloud.call(execute(self._jobs().run(name=self.job_name(job_id), body={})))
