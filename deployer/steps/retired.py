"""What a feature left behind once it is gone from the config: ``up`` deletes it.

Removing the [worker] table, its ``broker = "redis"``, the last [[cron]] entry or setting
``[monitoring] enabled = false`` takes those features' steps out of the graph; these steps take
their place and delete what the earlier deploys made, found as destroy finds it:

- ``worker-retired``: the worker pool (its name, ``Names.owns`` on its labels);
- ``redis-retired``: the Memorystore for Redis instance (the same) and its URL's secret
  (steps/redis_url.py), once the service, the jobs and the worker have moved off it;
- ``cron-retired``: the scheduler jobs whose description names djdeploy, this tenant and app
  (steps/cron.py), the Cloud Run job each ran (if ours; its invoker binding goes with it), then
  the scheduler account (ours by its description), which observe looks for;
- ``monitoring-retired``: the alert policies, uptime checks and notification channel of ours
  (display name or tenant+app labels, then ``Names.owns``: steps/monitoring.py);
- ``ci-retired``: the deploy-on-push trigger, its deployer account's project roles, then the
  account (ours by its description: steps/service_accounts.py), which observe looks for.

None of it is the app's data (a Redis broker's queued tasks are lost, as with destroy). Each
observes with one read when nothing is left (a GET of the pool or of the Redis instance; a GET
of the scheduler account, then a list of the scheduler jobs; a list of the uptime checks, then
of the policies and channels when one is found; a GET of the deployer account, then of the
trigger and the project policy), then answers DELETE with one field per resource or
noop("why"). Apply deletes what the change names, the resource observe looks for last, so a
run cut short anywhere (kill -9) leaves it for the next observation, and a delete of one
already gone is done: the Cloud Run job before the scheduler job that runs it, the scheduler
account after every job; the alert policy, then the notification channel, then the uptime
checks; the trigger, then the account's roles, then the account. destroy deletes the same
things.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deployer.gcp import policy
from deployer.steps import ci
from deployer.steps.base import Action, Change, FieldChange, Operation
from deployer.steps.cron import CronSchedules
from deployer.steps.labelled import kept
from deployer.steps.monitoring import ours, short_id
from deployer.steps.redis import OnRedisInstance
from deployer.steps.redis_url import delete_secret
from deployer.steps.service_accounts import ServiceAccounts
from deployer.steps.worker import OnWorkerPool

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud
    from deployer.gcp.monitoring import Kind

#: the order their deletes run in: a policy names the checks and the channel; the checks last,
#: as they are what observe looks for
MONITORING_KINDS: tuple[Kind, ...] = ("alertPolicies", "notificationChannels", "uptimeCheckConfigs")


#: the path of a field naming one of our service accounts, deleted last (what observe finds)
ACCOUNT = "service account "


def account_field(email: str, what: str) -> FieldChange:
    return FieldChange(f"{ACCOUNT}{email}", what, None)


def has_account(cloud: Cloud, config: Config, email: str) -> bool:
    """Whether the service account ``email`` exists and is ours (its description)."""
    account = cloud.iam.get_service_account(email)
    return account is not None and ServiceAccounts(config).is_ours(account)


@dataclass(frozen=True)
class _Retired(Operation):
    """observe, then DELETE (one field per resource: path its id, old what it is) or noop."""

    config: Config
    needs: tuple[str, ...] = ("apis",)

    def observe(self, cloud: Cloud) -> Any | None:
        raise NotImplementedError

    def diff(self, observed: Any | None) -> Change:
        raise NotImplementedError

    def gone(self, reason: str, fields: list[FieldChange]) -> Change:
        """What up will delete (plan shows each field's resource going to null)."""
        return self._change(Action.DELETE, reason, fields)

    def apply(self, cloud: Cloud, change: Change) -> None:
        raise NotImplementedError

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        """What up would do, done: destroy after the feature was removed deletes it too."""
        change = self.diff(self.observe(cloud))
        if change.action is Action.DELETE:
            self.apply(cloud, change)
        return change


@dataclass(frozen=True)
class RetiredWorker(OnWorkerPool, _Retired):
    name: str = "worker-retired"

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        return cloud.run.get_worker_pool(self.pool)

    def diff(self, observed: dict[str, Any] | None) -> Change:
        if observed is None:
            return self.noop("no [worker]: no worker pool")
        if not self.config.names.owns(observed.get("labels")):
            return self.noop(kept(f"worker pool {self.pool}"))
        if observed.get("deleteTime"):
            return self.wait(f"worker pool {self.pool} being deleted")
        count = (observed.get("scaling") or {}).get("manualInstanceCount") or 0
        return self.gone(
            f"no [worker]: delete worker pool {self.pool}",
            [FieldChange(self.pool, f"{count} instance(s)", None)],
        )

    def apply(self, cloud: Cloud, change: Change) -> None:
        cloud.run.delete_worker_pool(self.pool)  # an operation: the engine re-observes


@dataclass(frozen=True)
class RetiredRedis(OnRedisInstance, _Retired):
    name: str = "redis-retired"

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        return cloud.redis.get_instance(self.instance)

    def diff(self, observed: dict[str, Any] | None) -> Change:
        if observed is None:
            return self.noop('no [worker] broker = "redis": no redis instance')
        if not self.config.names.owns(observed.get("labels")):
            return self.noop(kept(self.resource))
        if observed.get("state") == "DELETING":
            return self.wait(f"redis instance {self.instance} being deleted")
        size = f"{observed.get('tier')}, {observed.get('memorySizeGb')} GB"
        return self.gone(
            f'no [worker] broker = "redis": delete redis instance {self.instance} '
            "(queued tasks are lost)",
            [FieldChange(self.instance, size, None)],
        )

    def apply(self, cloud: Cloud, change: Change) -> None:
        delete_secret(cloud, self.config)  # its URL: first, as observe looks for the instance
        cloud.redis.delete_instance(self.instance)  # an operation: the engine re-observes


@dataclass(frozen=True)
class RetiredCron(_Retired):
    name: str = "cron-retired"

    @property
    def email(self) -> str:
        return self.config.names.scheduler_sa_email

    @property
    def resource(self) -> str:
        return f"Cloud Scheduler jobs of {self.config.names.prefix} in {self.config.region}"

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        """{job id: scheduler job} of ours; None: no scheduler account of ours (one read).
        The account is made before the first job and deleted after the last, so no job of
        ours outlives it."""
        if not has_account(cloud, self.config, self.email):
            return None
        schedules = CronSchedules(self.config)
        return {
            short_id(job["name"]): job
            for job in cloud.scheduler.list_jobs()
            if schedules.entry_of(job) is not None
        }

    def diff(self, observed: dict[str, Any] | None) -> Change:
        if observed is None:
            return self.noop("no [[cron]] entry: no scheduled command")
        fields = [FieldChange(jid, observed[jid].get("schedule"), None) for jid in sorted(observed)]
        fields.append(account_field(self.email, "scheduler"))
        jobs = f"{len(observed)} scheduled command(s) and " if observed else ""
        return self.gone(f"no [[cron]] entry: delete {jobs}the scheduler account", fields)

    def apply(self, cloud: Cloud, change: Change) -> None:
        for f in change.fields:  # the jobs, then the account (what observe finds) last
            if f.path.startswith(ACCOUNT):
                cloud.iam.delete_service_account(self.email)
                continue
            # the Cloud Run job first: the scheduler job is what the next observe lists
            run_job = cloud.run.get_job(f.path)
            if run_job is not None and self.config.names.owns(run_job.get("labels")):
                cloud.run.delete_job(f.path)
            cloud.scheduler.delete_job(f.path)


@dataclass(frozen=True)
class RetiredMonitoring(_Retired):
    name: str = "monitoring-retired"

    @property
    def resource(self) -> str:
        return f"uptime monitoring of {self.config.names.prefix}"

    def observe(self, cloud: Cloud) -> dict[Kind, list[dict[str, Any]]] | None:
        """Ours of each kind; None: no uptime check of ours (one read). A policy of ours names
        a check, so none outlives the checks, which apply deletes last."""
        names = self.config.names
        display = {
            "alertPolicies": names.alert_policy,
            "notificationChannels": names.alert_channel,
            "uptimeCheckConfigs": names.uptime_check,
        }

        def find(kind: Kind) -> list[dict[str, Any]]:
            return ours(cloud.monitoring.list(kind), display_name=display[kind], names=names)

        checks = find("uptimeCheckConfigs")
        if not checks:
            return None
        return {k: checks if k == "uptimeCheckConfigs" else find(k) for k in MONITORING_KINDS}

    def diff(self, observed: dict[Kind, list[dict[str, Any]]] | None) -> Change:
        if not observed:
            return self.noop("[monitoring] is off: no uptime check of ours")
        fields = [
            FieldChange(item["name"], item.get("displayName"), None)
            for kind in MONITORING_KINDS
            for item in observed.get(kind, [])
        ]
        return self.gone(
            f"[monitoring] is off: delete {len(fields)} monitoring resource(s)", fields
        )

    def apply(self, cloud: Cloud, change: Change) -> None:
        for f in change.fields:  # in MONITORING_KINDS order
            kind = next(k for k in MONITORING_KINDS if f"/{k}/" in f.path)
            cloud.monitoring.delete(kind, f.path)


@dataclass(frozen=True)
class RetiredCi(_Retired):
    name: str = "ci-retired"

    @property
    def email(self) -> str:
        return self.config.names.deployer_sa_email

    @property
    def member(self) -> str:
        return f"serviceAccount:{self.email}"

    @property
    def resource(self) -> str:
        return f"deploy on push of {self.config.names.prefix}"

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        """The trigger (ours), the roles the account holds; None: no deployer account of ours
        (one read). The account is made first and deleted last, so none outlives it."""
        if not has_account(cloud, self.config, self.email):
            return None
        trigger = cloud.build.get_trigger(self.config.names.ci_trigger)
        bindings = cloud.projects.get_iam_policy().get("bindings") or []
        held = sorted({b["role"] for b in bindings if self.member in b.get("members", [])})
        return {"trigger": trigger if trigger and ci.is_ours(trigger) else None, "roles": held}

    def diff(self, observed: dict[str, Any] | None) -> Change:
        if observed is None:
            return self.noop("no [ci]: no deploy-on-push trigger")
        fields = []
        if observed["trigger"] is not None:
            trigger = observed["trigger"]
            fields.append(
                FieldChange(f"trigger {trigger['name']}", trigger.get("description"), None)
            )
        if observed["roles"]:
            fields.append(FieldChange(f"roles of {self.email}", ", ".join(observed["roles"]), None))
        fields.append(account_field(self.email, "deployer (CI)"))
        return self.gone("no [ci]: delete the trigger and its deployer account", fields)

    def apply(self, cloud: Cloud, change: Change) -> None:
        for f in change.fields:  # the trigger first, the account (what observe finds) last
            if f.path.startswith("trigger "):
                found = cloud.build.get_trigger(self.config.names.ci_trigger)
                if found is not None and ci.is_ours(found):
                    cloud.build.delete_trigger(found["id"])
            elif f.path.startswith("roles of "):
                held = f.old.split(", ")
                policy.remove_bindings(
                    cloud,
                    get=cloud.projects.get_iam_policy,
                    set=cloud.projects.set_iam_policy,
                    unwanted={role: {self.member} for role in held},
                    key=f"{self.config.project}/project",
                )
            elif f.path.startswith(ACCOUNT):
                cloud.iam.delete_service_account(self.email)
