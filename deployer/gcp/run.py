"""Cloud Run Admin v2: services, jobs, executions, worker pools and their IAM policies, as
JSON-shaped dicts.

Bodies are camelCase JSON dicts with enum names (as the REST API documents them); they become
GAPIC messages through the JSON parser (``Message.from_json``) and come back through
``to_dict`` (camelCase, enum names, default values included). Every call goes through
``cloud.call`` (one retry policy: the libraries' retries are off); reads that may 404 through
``cloud.read``. Mutations start a long-running operation and return at once: the operation
future is dropped, the engine re-observes.
"""

from __future__ import annotations

from typing import Any, TypeVar

from deployer.gcp import deletes
from deployer.gcp.context import Context
from deployer.gcp.proto import from_dict, policy_from_dict, policy_to_dict, to_dict

T = TypeVar("T")
MANAGED_BY = "managed-by"


class RunApi:
    def __init__(self, cloud: Context) -> None:
        self.cloud = cloud

    # -- names -------------------------------------------------------------------------------

    @property
    def parent(self) -> str:
        return f"projects/{self.cloud.project}/locations/{self.cloud.region}"

    def service_name(self, service: str) -> str:
        return service if service.startswith("projects/") else f"{self.parent}/services/{service}"

    def job_name(self, job: str) -> str:
        return job if job.startswith("projects/") else f"{self.parent}/jobs/{job}"

    def worker_pool_name(self, pool: str) -> str:
        return pool if pool.startswith("projects/") else f"{self.parent}/workerPools/{pool}"

    def execution_name(self, job: str, execution: str) -> str:
        if execution.startswith("projects/"):
            return execution
        return f"{self.job_name(job)}/executions/{execution}"

    # -- clients -----------------------------------------------------------------------------

    def _client(self, kind: str) -> Any:
        return self.cloud.clients.gapic(kind)

    # -- services ----------------------------------------------------------------------------

    def get_service(self, name: str) -> dict[str, Any] | None:
        client = self._client("run.services")
        return self.cloud.read(
            lambda: to_dict(
                client.get_service(
                    name=self.service_name(name),
                    retry=None,
                    timeout=self.cloud.clients.request_timeout,
                )
            ),
            key=("run.service", name),
        )

    def list_services(self) -> list[dict[str, Any]]:
        client = self._client("run.services")

        def fetch() -> list[dict[str, Any]]:
            pages = client.list_services(
                parent=self.parent, retry=None, timeout=self.cloud.clients.request_timeout
            )
            return [to_dict(s) for s in pages]

        return self.cloud.call(fetch)

    def create_service(self, service_id: str, body: dict[str, Any]) -> None:
        from google.cloud.run_v2 import types as run_types

        client = self._client("run.services")
        message = from_dict(run_types.Service, {k: v for k, v in body.items() if k != "name"})
        self.cloud.call(
            lambda: client.create_service(
                parent=self.parent,
                service=message,
                service_id=service_id,
                retry=None,
                timeout=self.cloud.clients.request_timeout,
            )
        )

    def update_service(self, body: dict[str, Any]) -> None:
        """Replace the service's spec with ``body`` (which names the service)."""
        from google.cloud.run_v2 import types as run_types

        client = self._client("run.services")
        message = from_dict(run_types.Service, {**body, "name": self.service_name(body["name"])})
        self.cloud.call(
            lambda: client.update_service(
                service=message, retry=None, timeout=self.cloud.clients.request_timeout
            )
        )

    def delete_service(self, name: str) -> bool:
        """Start deleting; False when it was already gone."""
        return self._delete(
            "run.services", "delete_service", self.service_name(name), what="service"
        )

    # -- jobs --------------------------------------------------------------------------------

    def get_job(self, name: str) -> dict[str, Any] | None:
        client = self._client("run.jobs")
        return self.cloud.read(
            lambda: to_dict(
                client.get_job(
                    name=self.job_name(name), retry=None, timeout=self.cloud.clients.request_timeout
                )
            ),
            key=("run.job", name),
        )

    def list_jobs(self) -> list[dict[str, Any]]:
        client = self._client("run.jobs")

        def fetch() -> list[dict[str, Any]]:
            return [
                to_dict(j)
                for j in client.list_jobs(
                    parent=self.parent, retry=None, timeout=self.cloud.clients.request_timeout
                )
            ]

        return self.cloud.call(fetch)

    def create_job(self, job_id: str, body: dict[str, Any]) -> None:
        from google.cloud.run_v2 import types as run_types

        client = self._client("run.jobs")
        message = from_dict(run_types.Job, {k: v for k, v in body.items() if k != "name"})
        self.cloud.call(
            lambda: client.create_job(
                parent=self.parent,
                job=message,
                job_id=job_id,
                retry=None,
                timeout=self.cloud.clients.request_timeout,
            )
        )

    def update_job(self, body: dict[str, Any]) -> None:
        from google.cloud.run_v2 import types as run_types

        client = self._client("run.jobs")
        message = from_dict(run_types.Job, {**body, "name": self.job_name(body["name"])})
        self.cloud.call(
            lambda: client.update_job(
                job=message, retry=None, timeout=self.cloud.clients.request_timeout
            )
        )

    def delete_job(self, name: str) -> bool:
        """Start deleting; False when it was already gone."""
        return self._delete("run.jobs", "delete_job", self.job_name(name), what="job")

    def run_job(self, name: str) -> None:
        """Start an execution (returns at once; list_executions shows it). Not safe to repeat
        (each run is a new execution): MaybeApplied when it may have started one unanswered
        (the job steps find it by its template's labels)."""
        client = self._client("run.jobs")
        clients = self.cloud.clients
        self.cloud.call(
            lambda: client.run_job(
                name=self.job_name(name),
                retry=None,
                timeout=clients.request_timeout,
                metadata=clients.deadline(),
            ),
            once=clients.request_timeout,
        )

    def run_job_with_args(self, name: str, args: list[str]) -> str:
        """Start an execution whose container runs ``args`` instead of the job's own
        (RunJobRequest.overrides; needs run.jobs.runWithOverrides); its short name. Not safe
        to repeat: MaybeApplied when it may have started one unanswered."""
        from google.cloud.run_v2 import types as run_types

        client = self._client("run.jobs")
        clients = self.cloud.clients
        overrides = run_types.RunJobRequest.Overrides(
            container_overrides=[run_types.RunJobRequest.Overrides.ContainerOverride(args=args)]
        )
        operation = self.cloud.call(
            lambda: client.run_job(
                request=run_types.RunJobRequest(name=self.job_name(name), overrides=overrides),
                retry=None,
                timeout=clients.request_timeout,
                metadata=clients.deadline(),
            ),
            once=clients.request_timeout,
        )
        return str(operation.metadata.name).rsplit("/", 1)[-1]

    # -- worker pools ------------------------------------------------------------------------

    def get_worker_pool(self, name: str) -> dict[str, Any] | None:
        client = self._client("run.workerpools")
        return self.cloud.read(
            lambda: to_dict(
                client.get_worker_pool(
                    name=self.worker_pool_name(name),
                    retry=None,
                    timeout=self.cloud.clients.request_timeout,
                )
            ),
            key=("run.workerpool", name),
        )

    def create_worker_pool(self, pool_id: str, body: dict[str, Any]) -> None:
        from google.cloud.run_v2 import types as run_types

        client = self._client("run.workerpools")
        message = from_dict(run_types.WorkerPool, {k: v for k, v in body.items() if k != "name"})
        self.cloud.call(
            lambda: client.create_worker_pool(
                parent=self.parent,
                worker_pool=message,
                worker_pool_id=pool_id,
                retry=None,
                timeout=self.cloud.clients.request_timeout,
            )
        )

    def update_worker_pool(self, body: dict[str, Any]) -> None:
        """Replace the worker pool's spec with ``body`` (which names the pool)."""
        from google.cloud.run_v2 import types as run_types

        client = self._client("run.workerpools")
        message = from_dict(
            run_types.WorkerPool, {**body, "name": self.worker_pool_name(body["name"])}
        )
        self.cloud.call(
            lambda: client.update_worker_pool(
                worker_pool=message, retry=None, timeout=self.cloud.clients.request_timeout
            )
        )

    def delete_worker_pool(self, name: str) -> bool:
        """Start deleting; False when it was already gone."""
        return self._delete(
            "run.workerpools", "delete_worker_pool", self.worker_pool_name(name), what="worker pool"
        )

    def _delete(self, kind: str, method: str, name: str, *, what: str) -> bool:
        """Start deleting ``name`` through ``kind``'s client (its ``method``), telling
        gcp/deletes.py how to read the operation's error; False when it was already gone."""
        from deployer.errors import NotFound

        client = self._client(kind)
        timeout = self.cloud.clients.request_timeout
        try:
            started = self.cloud.call(
                lambda: getattr(client, method)(name=name, retry=None, timeout=timeout)
            )
        except NotFound:
            return False
        op_name = str(started.operation.name)

        def reason() -> str | None:
            def fetch() -> str | None:
                op = client.get_operation(request={"name": op_name}, retry=None, timeout=timeout)
                return str(op.error.message) if op.done and op.HasField("error") else None

            return self.cloud.read(fetch, key=("run.operation", op_name))

        deletes.started("Cloud Run", f"{what} {name.rsplit('/', 1)[-1]}", reason)
        return True

    # -- revisions ---------------------------------------------------------------------------

    def list_revisions(self, service: str) -> list[dict[str, Any]]:
        """The service's revisions, newest first ([] when the service does not exist)."""
        client = self._client("run.revisions")

        def fetch() -> list[dict[str, Any]]:
            pages = client.list_revisions(
                parent=self.service_name(service),
                retry=None,
                timeout=self.cloud.clients.request_timeout,
            )
            return [to_dict(r) for r in pages]

        items = self.cloud.read(fetch) or []
        items.sort(key=lambda r: (r.get("createTime") or "", r.get("name") or ""), reverse=True)
        return items

    def get_revision(self, service: str, revision: str) -> dict[str, Any] | None:
        client = self._client("run.revisions")
        name = f"{self.service_name(service)}/revisions/{revision.rsplit('/', 1)[-1]}"
        found = self.cloud.read(
            lambda: client.get_revision(
                name=name, retry=None, timeout=self.cloud.clients.request_timeout
            )
        )
        return None if found is None else to_dict(found)

    # -- executions --------------------------------------------------------------------------

    def list_executions(self, job: str) -> list[dict[str, Any]]:
        """The job's executions, newest first ([] when the job does not exist)."""
        client = self._client("run.executions")

        def fetch() -> list[dict[str, Any]]:
            pages = client.list_executions(
                parent=self.job_name(job), retry=None, timeout=self.cloud.clients.request_timeout
            )
            return [to_dict(e) for e in pages]

        found = self.cloud.read(fetch, key=("run.executions", job))
        items = found or []
        items.sort(key=lambda e: (e.get("createTime") or "", e.get("name") or ""), reverse=True)
        return items

    def get_execution(self, job: str, execution: str) -> dict[str, Any] | None:
        client = self._client("run.executions")
        found = self.cloud.read(
            lambda: client.get_execution(
                name=self.execution_name(job, execution),
                retry=None,
                timeout=self.cloud.clients.request_timeout,
            )
        )
        return None if found is None else to_dict(found)

    # -- IAM ---------------------------------------------------------------------------------

    def _iam_client(self, resource: str) -> tuple[Any, str]:
        if "/jobs/" in resource:
            return self._client("run.jobs"), resource
        return self._client("run.services"), self.service_name(resource)

    def get_iam_policy(self, resource: str) -> dict[str, Any]:
        """The IAM v1 policy of a service (short or full name) or a job (full name)."""
        client, name = self._iam_client(resource)
        return self.cloud.call(  # NotFound propagates: the resource does not exist
            lambda: policy_to_dict(
                client.get_iam_policy(
                    request={"resource": name, "options": {"requested_policy_version": 3}},
                    retry=None,
                    timeout=self.cloud.clients.request_timeout,
                )
            ),
            key=("run.iam", name),
        )

    def set_iam_policy(self, resource: str, policy: dict[str, Any]) -> dict[str, Any]:
        """Write the policy (guarded by its etag: 409 ABORTED when it changed meanwhile)."""
        client, name = self._iam_client(resource)
        message = policy_from_dict(policy)
        written = self.cloud.call(
            lambda: client.set_iam_policy(
                request={"resource": name, "policy": message},
                retry=None,
                timeout=self.cloud.clients.request_timeout,
            )
        )
        return policy_to_dict(written)

    # -- tenants -----------------------------------------------------------------------------

    def list_managed(self) -> list[dict[str, Any]]:
        """Services and jobs in this project/region labelled managed-by=djdeploy."""
        out: list[dict[str, Any]] = []
        for kind, items in (("service", self.list_services()), ("job", self.list_jobs())):
            for item in items:
                labels = dict(item.get("labels") or {})
                if labels.get(MANAGED_BY) == "djdeploy":
                    found = {"kind": kind, "name": item["name"].rsplit("/", 1)[-1]}
                    if kind == "service":  # where it serves, and its health path (status)
                        found.update(url=_url(item), health_path=_health_path(item))
                    out.append({**found, "labels": labels})
        return out


def _url(service: dict[str, Any]) -> str:
    """The service's URL as `status --tenant` shows it: the deterministic
    ``<service>-<project number>.<region>.run.app`` among its ``urls``, else its ``uri``."""
    deterministic = [u for u in service.get("urls") or [] if not u.endswith(".a.run.app")]
    return deterministic[0] if deterministic else str(service.get("uri") or "")


def _health_path(service: dict[str, Any]) -> str:
    """The HEALTH_PATH the service's container is given (deployer/contract.py), else "/"."""
    for container in (service.get("template") or {}).get("containers") or []:
        for env in container.get("env") or []:
            if env.get("name") == "HEALTH_PATH" and env.get("value"):
                return str(env["value"])
    return "/"
