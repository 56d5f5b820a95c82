"""Every resource name and label of one deployment, derived from the Config here and nowhere
else, and the one ownership rule (`Names.owns`)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass

from deployer.config.rules import BUCKET_RE, SA_ID_RE, SERVICE_RE, FrozenDict, fail
from deployer.regions import RUN_APP_CODES


def _short_hash(text: str) -> str:
    """6 hex digits, stable across runs and machines (unlike hash())."""
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def _fit(base: str, suffix: str, limit: int) -> str:
    """base + suffix, or, when longer than limit, a truncated base + a hash of the full name +
    suffix: stable, distinct for distinct inputs, and never ending the head with a hyphen."""
    full = base + suffix
    if len(full) <= limit:
        return full
    head = base[: limit - len(suffix) - 7].rstrip("-")
    return f"{head}-{_short_hash(full)}{suffix}"


@dataclass(frozen=True)
class Names:
    """Every resource name and label of one deployment, derived from Config only (never
    typed by hand elsewhere), each checked against its resource's rules."""

    prefix: str
    _: KW_ONLY
    project: str
    region: str
    service: str
    db_init_job: str
    migrate_job: str
    sql_instance: str
    sql_instance_shared: bool
    database: str
    db_user: str
    bucket: str
    staging_bucket: str
    registry: str
    image_repo: str
    runtime_sa_id: str
    build_sa_id: str
    scheduler_sa_id: str  # the identity Cloud Scheduler calls the Run API as ([[cron]])
    deployer_sa_id: str  # the identity the deploy-on-push trigger's builds run as ([ci])
    ci_trigger: str  # the Cloud Build trigger of [ci]
    secret_db_password: str
    secret_key: str
    secret_superuser_password: str
    labels: dict[str, str]  # a FrozenDict
    connection_name: str
    uptime_check: str  # display names: Cloud Monitoring assigns the ids
    alert_policy: str
    alert_channel: str

    def owns(self, labels: Mapping[str, str] | None) -> bool:
        """Whether a resource found under one of our names is ours to adopt, change or delete.

        Ours: no label naming another tenant or app, and either managed-by=djdeploy or our
        tenant label. So one of our labels removed by hand is drift that `up` repairs, while a
        resource of someone else (or of another tenant) is never adopted."""
        labels = labels or {}
        for key in ("djdeploy-tenant", "djdeploy-app"):
            if key in labels and labels[key] != self.labels[key]:
                return False
        return (
            labels.get("managed-by") == "djdeploy"
            or labels.get("djdeploy-tenant") == self.labels["djdeploy-tenant"]
        )

    @property
    def runtime_sa_email(self) -> str:
        return f"{self.runtime_sa_id}@{self.project}.iam.gserviceaccount.com"

    @property
    def build_sa_email(self) -> str:
        return f"{self.build_sa_id}@{self.project}.iam.gserviceaccount.com"

    @property
    def scheduler_sa_email(self) -> str:
        return f"{self.scheduler_sa_id}@{self.project}.iam.gserviceaccount.com"

    @property
    def deployer_sa_email(self) -> str:
        return f"{self.deployer_sa_id}@{self.project}.iam.gserviceaccount.com"

    @property
    def manage_job(self) -> str:
        """The Cloud Run job `djdeploy manage` runs (no longer than migrate_job, which is
        checked)."""
        return f"{self.prefix}-manage"

    @property
    def worker_pool(self) -> str:
        """The Cloud Run worker pool of [worker] (no longer than migrate_job, which is
        checked)."""
        return f"{self.prefix}-worker"

    @property
    def redis_instance(self) -> str:
        """The Memorystore for Redis instance of ``[worker] broker = "redis"`` (an instance id
        is at most 40 characters: shortened with a stable hash)."""
        return _fit(self.prefix, "-redis", 40)

    @property
    def redis_url_secret(self) -> str:
        """The secret holding the Redis broker's URL, AUTH string included (steps/redis_url.py)."""
        return f"{self.prefix}-redis-url"

    def cron_job(self, entry: str) -> str:
        """The Cloud Run job (and the Cloud Scheduler job) of the [[cron]] entry ``entry``:
        at most 49 characters (Cloud Run's limit), shortened with a stable hash."""
        return _fit(f"{self.prefix}-cron-{entry}", "", 49)

    def service_url(self, project_number: str) -> str:
        """The service's deterministic URL, known before it exists (ALLOWED_HOSTS, CSRF)."""
        return f"https://{self.service}-{project_number}.{self.region}.run.app"

    @property
    def run_app_host_pattern(self) -> str:
        """The service's older host, ``<service>-<hash>-<code>.a.run.app``, with ``*`` for the
        hash Cloud Run makes up on the first deploy (and for the region's code when
        RUN_APP_CODES lacks it): known before the service exists, so that its first revision
        can allow it (the container allows the one host of that shape; docs/configuration.md,
        "Hosts and custom domains")."""
        return f"{self.service}-*-{RUN_APP_CODES.get(self.region, '*')}.a.run.app"

    @classmethod
    def derive(
        cls,
        *,
        tenant: str,
        app: str,
        project: str,
        region: str,
        shared_instance: str | None = None,
        extra_labels: Mapping[str, str] | None = None,
    ) -> Names:
        """Names for tenant/app in project/region (inputs assumed valid)."""
        prefix = f"{tenant}-{app}"
        registry = prefix
        sql_instance = shared_instance or f"{prefix}-pg"
        db = f"{tenant}_{app}".replace("-", "_")
        labels: dict[str, str] = dict(extra_labels or {})
        labels.update({"managed-by": "djdeploy", "djdeploy-tenant": tenant, "djdeploy-app": app})
        return cls(
            prefix,
            project=project,
            region=region,
            service=prefix,
            db_init_job=f"{prefix}-db-init",
            migrate_job=f"{prefix}-migrate",
            sql_instance=sql_instance,
            sql_instance_shared=shared_instance is not None,
            database=db,
            db_user=db,
            bucket=_fit(f"{project}-{prefix}", "-media", 63),
            staging_bucket=_fit(project, "-djdeploy-sources", 63),
            registry=registry,
            image_repo=f"{region}-docker.pkg.dev/{project}/{registry}/{app}",
            runtime_sa_id=_sa_id(prefix, "-run"),
            build_sa_id=_sa_id(prefix, "-build"),
            scheduler_sa_id=_sa_id(prefix, "-sched"),
            deployer_sa_id=_sa_id(prefix, "-deploy"),
            ci_trigger=f"djdeploy-{tenant}",
            secret_db_password=f"{prefix}-db-password",
            secret_key=f"{prefix}-secret-key",
            secret_superuser_password=f"{prefix}-superuser-password",
            labels=FrozenDict(labels),
            connection_name=f"{project}:{region}:{sql_instance}",
            uptime_check=f"djdeploy {prefix} health",
            alert_policy=f"djdeploy {prefix} is down",
            alert_channel=f"djdeploy {prefix} alerts",
        )

    def validate(self) -> None:
        """Check every derived name against its resource's rules (a bug guard for the
        fixed parts; for user parts, it names what to change)."""
        for attr in ("service", "db_init_job", "migrate_job"):
            value = getattr(self, attr)
            if not SERVICE_RE.match(value):
                fail(
                    f"names.{attr}",
                    value,
                    "Cloud Run names are at most 49 lowercase letters, digits or hyphens: "
                    "shorten tenant or app",
                )
        for attr in ("bucket", "staging_bucket"):
            value = getattr(self, attr)
            if not BUCKET_RE.match(value):
                fail(
                    f"names.{attr}",
                    value,
                    "bucket names are 3-63 lowercase letters, digits, "
                    "'-' or '_', starting and ending with a letter or digit",
                )
            if value.startswith("goog") or "google" in value or "g00gle" in value:
                fail(
                    f"names.{attr}",
                    value,
                    'Cloud Storage refuses names that start with "goog" '
                    'or contain "google": choose a project, tenant or app without it',
                )
        for attr in ("runtime_sa_id", "build_sa_id", "scheduler_sa_id", "deployer_sa_id"):
            value = getattr(self, attr)
            if not SA_ID_RE.match(value):
                fail(
                    f"names.{attr}",
                    value,
                    "service account ids are 6-30 lowercase letters, digits or hyphens",
                )


def _sa_id(prefix: str, suffix: str) -> str:
    """A service account id (6-30 chars): shortened with a stable hash, padded when short."""
    sa = _fit(prefix, suffix, 30)
    while len(sa) < 6:
        sa += "-sa"
    return sa
