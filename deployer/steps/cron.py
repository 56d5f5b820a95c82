"""The [[cron]] entries' resources (docs/cron.md): a Cloud Run job per entry (step
"cron-job-<name>") and their Cloud Scheduler jobs (step "cron").

An entry's Cloud Run job is built as the migrate job is (steps/jobs.py: image, env, Cloud SQL
socket, media volume, runtime account) with the command as its args (``entrypoint.sh manage
<command>``, labelled ``djdeploy-cron: <name>``); its step keeps the definition up to date and
never runs it: Cloud Scheduler does.

Each entry's scheduler job has the entry's Cloud Run job's name (``Names.cron_job``) and, on
its schedule and time zone, POSTs to the Run API's ``jobs/<job>:run`` with an OAuth token of
the scheduler service account, which may run those jobs and nothing else (steps/iam.py). The
request carries no body: the command is the job's own args, so no override (and no
``run.jobs.runWithOverrides`` permission) is needed.

Scheduler jobs have no labels: ours are recognised by their description, which names djdeploy,
the entry, the tenant and the app (DESCRIPTION), as service accounts are. One step for all the
entries, so that up deletes the scheduler job of an entry removed from the config (and its
Cloud Run job), and destroy every one of ours. ``state`` is not compared: a job paused by hand
(an incident) stays paused until resumed by hand.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deployer import errors
from deployer.errors import Conflict
from deployer.steps import container_env as ce
from deployer.steps.base import Action, Change, FieldChange, NotOurs, Operation, field_changes
from deployer.steps.jobs import _Job

if TYPE_CHECKING:
    from deployer.config import Config, CronEntry
    from deployer.gcp.cloud import Cloud

CRON_LABEL = "djdeploy-cron"  # on an entry's Cloud Run job: the entry it runs
#: the description that marks a scheduler job as ours (they have no labels)
DESCRIPTION = (
    "djdeploy scheduled command {entry} of tenant {tenant} (app {app}); managed by djdeploy"
)
_DESCRIPTION_RE = re.compile(
    re.escape(DESCRIPTION)
    .replace(re.escape("{entry}"), r"(?P<entry>\S+)")
    .replace(re.escape("{tenant}"), r"(?P<tenant>\S+)")
    .replace(re.escape("{app}"), r"(?P<app>\S+)")
)
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
#: a failed call to jobs:run started nothing, so trying again cannot run a command twice
RETRY_COUNT = 3
#: jobs:run answers once the execution is created (an operation), well within a minute
ATTEMPT_DEADLINE = "60s"


@dataclass(frozen=True)
class CronJob(_Job):
    """The Cloud Run job of one [[cron]] entry."""

    entry: CronEntry = field(kw_only=True)
    needs: tuple[str, ...] = ("migrate",)  # a new image's commands run on a migrated schema
    command = ce.MANAGE
    media = True

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"cron-job-{self.entry.name}"

    @property
    def job_id(self) -> str:
        return self.config.names.cron_job(self.entry.name)

    @property
    def args(self) -> list[str]:
        return [ce.MANAGE, *self.entry.command]

    def marker(self, *_: object) -> str:
        """The executions' label: the image they ran (the step never runs the job)."""
        return ce.spec_hash(self.image)

    @property
    def what(self) -> str:
        return "image"

    def task_template(self, inputs: ce.Inputs) -> dict[str, Any]:
        template = super().task_template(inputs)
        template["containers"][0]["args"] = self.args
        return template

    def desired(self, inputs: ce.Inputs) -> dict[str, Any]:
        body = super().desired(inputs)
        for where in (body, body["template"]):
            where["labels"] = {**where["labels"], CRON_LABEL: self.entry.name}
        return body

    def diff(self, observed: dict[str, Any] | None) -> Change:
        """Create or update the definition, never run it, whatever its executions did: the
        migrate job's answer stands only when it creates or refuses (not ours; a secret without
        an enabled version)."""
        first = super().diff(observed)
        if observed is None or first.action is Action.REFUSE:
            return first
        jid = self.job_id
        job: dict[str, Any] = observed["job"]
        if job.get("reconciling") or job.get("generation") != job.get("observedGeneration"):
            return self.wait(f"job {jid} updating", info=first.info)
        desired = self.desired(observed["inputs"])
        desired.pop("name")  # short here, full on the server
        fields = ce.spec_changes(desired, job)
        if fields:
            return self.update(f"job {jid} differs", fields, info=first.info)
        return self.noop(f"job {jid} exists and matches", info=first.info)


@dataclass(frozen=True)
class CronSchedules(Operation):
    config: Config
    name: str = "cron"
    needs: Sequence[str] = ("iam-scheduler",)  # and each cron-job step (build_steps)

    @property
    def resource(self) -> str:
        return f"Cloud Scheduler jobs of {self.config.names.prefix} in {self.config.region}"

    # -- what we want ------------------------------------------------------------------------

    def job_id(self, entry: CronEntry) -> str:
        return self.config.names.cron_job(entry.name)

    def entry_of(self, job: dict[str, Any]) -> str | None:
        """The [[cron]] entry a scheduler job of ours runs (None: not ours)."""
        m = _DESCRIPTION_RE.match(job.get("description") or "")
        if m is None or (m["tenant"], m["app"]) != (self.config.tenant, self.config.app):
            return None
        return m["entry"]

    def desired(self, entry: CronEntry) -> dict[str, Any]:
        cfg = self.config
        uri = (
            f"https://run.googleapis.com/v2/projects/{cfg.project}/locations/{cfg.region}"
            f"/jobs/{self.job_id(entry)}:run"
        )
        return {
            "description": DESCRIPTION.format(entry=entry.name, tenant=cfg.tenant, app=cfg.app),
            "schedule": entry.schedule,
            "timeZone": entry.time_zone,
            "httpTarget": {
                "uri": uri,
                "httpMethod": "POST",
                "oauthToken": {"serviceAccountEmail": cfg.names.scheduler_sa_email, "scope": SCOPE},
            },
            "retryConfig": {"retryCount": RETRY_COUNT},
            "attemptDeadline": ATTEMPT_DEADLINE,
        }

    # -- the protocol ------------------------------------------------------------------------

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        """{job id: job} of the configured ids and of every other job of ours; None: none."""
        wanted = {self.job_id(e) for e in self.config.cron}
        found = {
            job["name"].rsplit("/", 1)[-1]: job
            for job in cloud.scheduler.list_jobs()
            if job["name"].rsplit("/", 1)[-1] in wanted or self.entry_of(job) is not None
        }
        return found or None

    def diff(self, observed: dict[str, Any] | None) -> Change:
        observed = observed or {}
        fields: list[FieldChange] = []
        wanted = {self.job_id(e): e for e in self.config.cron}
        for jid, entry in wanted.items():
            job = observed.get(jid)
            if job is None:
                fields.append(FieldChange(jid, None, entry.schedule))
                continue
            if self.entry_of(job) != entry.name:
                return self.refuse(NotOurs(self.not_ours_message(jid)), f"{jid} is not ours")
            desired = self.desired(entry)
            fields += [
                FieldChange(f"{jid}.{f.path}", f.old, f.new)
                for f in field_changes(desired, ce.project(desired, job))
            ]
        stale = sorted(set(observed) - set(wanted))
        fields += [FieldChange(jid, observed[jid].get("schedule"), None) for jid in stale]
        if not fields:
            return self.noop(f"{len(wanted)} scheduled command(s) exist and match")
        if all(f.old is None and "." not in f.path for f in fields):
            return self.create(f"{len(fields)} scheduled command(s) missing", fields)
        return self.update("scheduled commands differ", fields)

    def not_ours_message(self, jid: str) -> str:
        return (
            f"Cloud Scheduler job {jid} exists but was not created by djdeploy for this "
            "tenant: delete it or rename the [[cron]] entry"
        )

    def apply(self, cloud: Cloud, change: Change) -> None:
        wanted = {self.job_id(e): e for e in self.config.cron}
        changed: dict[str, list[str]] = {}
        for f in change.fields:
            jid, _, path = f.path.partition(".")
            if not path and jid in wanted:
                self._create(cloud, jid, wanted[jid])
            elif not path:
                self._delete(cloud, jid)
            else:
                changed.setdefault(jid, []).append(path.split(".")[0])
        for jid, top in changed.items():
            cloud.scheduler.patch_job(jid, self.desired(wanted[jid]), sorted(set(top)))

    def _create(self, cloud: Cloud, jid: str, entry: CronEntry) -> None:
        try:
            cloud.scheduler.create_job(jid, self.desired(entry))
        except Conflict:
            # a retried create, or an earlier run's: ours is adopted, anyone else's refused
            job = cloud.scheduler.get_job(jid)
            if job is not None and self.entry_of(job) != entry.name:
                raise errors.NotOurs(self.not_ours_message(jid)) from None

    def _delete(self, cloud: Cloud, jid: str) -> bool:
        """Delete our scheduler job ``jid``, then the Cloud Run job it ran (if ours)."""
        deleted = cloud.scheduler.delete_job(jid)
        run_job = cloud.run.get_job(jid)
        if run_job is not None and self.config.names.owns(run_job.get("labels")):
            cloud.run.delete_job(jid)
        return deleted

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        observed = self.observe(cloud) or {}
        ours = [jid for jid, job in observed.items() if self.entry_of(job) is not None]
        kept = sorted(set(observed) - set(ours))
        wanted = {self.job_id(e) for e in self.config.cron}
        deleted = [  # a configured entry's Cloud Run job is its cron-job step's to delete
            jid
            for jid in sorted(ours)
            if (cloud.scheduler.delete_job(jid) if jid in wanted else self._delete(cloud, jid))
        ]
        if kept:
            return self.noop(f"kept {', '.join(kept)}: not created by djdeploy")
        if not deleted:
            return self.noop("no scheduled command left")
        return self.deleted(f"deleted scheduler jobs {', '.join(deleted)}")
