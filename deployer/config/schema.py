"""The tables of a Config ([service], [database], [media], ...): one frozen dataclass each,
validated on construction, so a bad table cannot exist."""

from __future__ import annotations

import functools
import shlex
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass

from deployer.config.rules import (
    APT_PACKAGE_RE,
    BRANCH_RE,
    CPUS,
    CRON_NAME_RE,
    EDITIONS,
    EGRESS,
    EMAIL_RE,
    EXTENSION_RE,
    GITHUB_REPO_RE,
    INGRESS,
    MEMORY_FOR_CPU,
    PROJECT_RE,
    RESOURCE_RE,
    SECRET_NAME_RE,
    SQL_INSTANCE_RE,
    UPTIME_PERIODS,
    USERNAME_RE,
    VPC_PATH_FORMS,
    VPC_PATHS,
    check_bool,
    check_choice,
    check_cron_command,
    check_int,
    check_storage_location,
    check_str,
    check_tier,
    cron_problem,
    fail,
    memory_mib,
    show,
)


def _check_secret_ref(secret: object, version: object, where: str) -> None:
    if not isinstance(secret, str) or not SECRET_NAME_RE.match(secret):
        fail(
            f"{where}.secret",
            secret,
            "a Secret Manager secret id is 1-255 letters, digits, '-' or '_'",
        )
    if not isinstance(version, str) or not (
        version == "latest" or (version.isdigit() and int(version) > 0)
    ):
        fail(f"{where}.version", version, 'use "latest" or a version number such as "3"')


@dataclass(frozen=True)
class SecretRef:
    """An env var whose value Cloud Run reads from an existing Secret Manager secret, so the
    value never passes through djdeploy. The deployer pins "latest" to a number at deploy."""

    secret: str
    _: KW_ONLY
    version: str = "latest"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str = "secret_env") -> None:
        _check_secret_ref(self.secret, self.version, where)

    @classmethod
    def parse(cls, value: object, *, where: str = "secret_env") -> SecretRef:
        """From the file/flag forms: "name", "name:3", {secret = "name", version = "3"}."""
        if isinstance(value, SecretRef):
            return value
        if isinstance(value, str):
            name, sep, version = value.partition(":")
            version = version if sep else "latest"
            _check_secret_ref(name, version, where)
            return cls(name, version=version)
        if isinstance(value, Mapping):
            extra = set(value) - {"secret", "version"}
            if extra or "secret" not in value:
                fail(where, dict(value), 'use "name", "name:3" or {secret = "name", version = "3"}')
            version = value.get("version", "latest")
            if isinstance(version, int) and not isinstance(version, bool):
                version = str(version)
            _check_secret_ref(value["secret"], version, where)
            return cls(value["secret"], version=version)
        fail(where, value, 'use "name", "name:3" or {secret = "name", version = "3"}')


def _check_size(table: str, cpu: object, memory: object) -> None:
    """A Cloud Run container's cpu and memory (the service's, the worker's)."""
    if not isinstance(cpu, str) or cpu not in CPUS:
        fail(
            f"{table}.cpu",
            cpu,
            "use one of " + ", ".join(show(c) for c in CPUS) + " (fractional CPU needs "
            "Cloud Run's first-generation environment, which cannot mount the media bucket)",
        )
    memory = check_str(f"{table}.memory", memory)
    mib = memory_mib(memory)
    if mib is None:
        fail(
            f"{table}.memory",
            memory,
            'use a size in Mi or Gi between 512Mi and 32Gi (e.g. "512Mi", "2Gi")',
        )
    lo, hi = MEMORY_FOR_CPU[cpu]
    if mib < 512 or mib > 32768:
        fail(f"{table}.memory", memory, "must be between 512Mi and 32Gi")
    if not lo <= mib <= hi:
        fail(
            f"{table}.memory",
            memory,
            f"with cpu {show(cpu)} Cloud Run allows {lo}Mi to {hi}Mi: "
            f"change {table}.memory or {table}.cpu",
        )


@dataclass(frozen=True)
class ServiceConfig:
    """The Cloud Run service's size and exposure. The jobs reuse cpu and memory."""

    cpu: str = "1"
    _: KW_ONLY
    memory: str = "512Mi"
    min_instances: int = 0
    max_instances: int = 3
    timeout_seconds: int = 300
    concurrency: int = 80
    ingress: str = "all"  # all | internal | internal-and-cloud-load-balancing
    public: bool = True  # grant roles/run.invoker to allUsers

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _check_size("service", self.cpu, self.memory)
        check_int("service.min_instances", self.min_instances, 0, 1000)
        check_int("service.max_instances", self.max_instances, 1, 1000)
        if self.min_instances > self.max_instances:
            fail(
                "service.min_instances",
                self.min_instances,
                f"must not exceed service.max_instances ({self.max_instances})",
            )
        check_int("service.timeout_seconds", self.timeout_seconds, 1, 3600)
        check_int("service.concurrency", self.concurrency, 1, 1000)
        check_choice("service.ingress", self.ingress, INGRESS)
        check_bool("service.public", self.public)


@dataclass(frozen=True)
class VpcConfig:
    """Egress into a VPC: Direct VPC (network + subnetwork) or a Serverless VPC connector."""

    network: str | None = None
    _: KW_ONLY
    subnetwork: str | None = None
    connector: str | None = None
    egress: str = "private-ranges-only"  # or all-traffic

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for name, path_re in VPC_PATHS.items():
            value = getattr(self, name)
            if value is None:
                continue
            check_str(f"vpc.{name}", value)
            path = path_re.match(value)
            if "/" in value and path is None:
                fail(
                    f"vpc.{name}",
                    value,
                    f"use a {name} name or its full path ({VPC_PATH_FORMS[name]})",
                )
            if path is not None and not PROJECT_RE.match(path["project"]):
                fail(f"vpc.{name}", value, f"{show(path['project'])} is not a project id")
            if not RESOURCE_RE.match(path["name"] if path else value):
                fail(
                    f"vpc.{name}",
                    value,
                    f"a {name} name is 1-63 lowercase letters, digits or hyphens, starting with a "
                    "letter and not ending with a hyphen",
                )
        direct = self.network is not None or self.subnetwork is not None
        if self.connector is not None and direct:
            fail(
                "vpc.connector",
                self.connector,
                "set either vpc.connector or vpc.network + vpc.subnetwork, not both",
            )
        if self.connector is None and (self.network is None or self.subnetwork is None):
            fail(
                "vpc",
                {"network": self.network, "subnetwork": self.subnetwork},
                "set vpc.network and vpc.subnetwork (Direct VPC egress), or vpc.connector",
            )
        check_choice("vpc.egress", self.egress, EGRESS)

    def regions(self) -> dict[str, str]:
        """The region each key given as a full path names ({} for bare names: those resolve in
        the service's region)."""
        found = {}
        for name in ("subnetwork", "connector"):
            path = VPC_PATHS[name].match(getattr(self, name) or "")
            if path is not None:
                found[name] = path["region"]
        return found


_DEFAULT_EXTENSIONS = ("pg_trgm", "unaccent", "hstore", "citext")


@dataclass(frozen=True)
class DatabaseConfig:
    """The Cloud SQL instance (ignored when shared_instance names an existing one) and the
    extensions the db-init job creates in the tenant's database."""

    tier: str = "db-f1-micro"
    _: KW_ONLY
    version: str = "POSTGRES_15"
    edition: str = "ENTERPRISE"
    disk_size_gb: int = 10
    extensions: tuple[str, ...] = _DEFAULT_EXTENSIONS
    shared_instance: str | None = None
    backups: bool = True
    deletion_protection: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.extensions, list):
            object.__setattr__(self, "extensions", tuple(self.extensions))
        self.validate()

    def validate(self) -> None:
        check_tier(self.tier)
        if self.version != "POSTGRES_15":
            fail(
                "database.version",
                self.version,
                'only "POSTGRES_15" is supported (the container and db-init are tested on it)',
            )
        check_choice("database.edition", self.edition, EDITIONS)
        perf = self.tier.startswith("db-perf-optimized-")
        if self.edition == "ENTERPRISE_PLUS" and not perf:
            fail(
                "database.tier",
                self.tier,
                'edition ENTERPRISE_PLUS needs a "db-perf-optimized-N-*" tier',
            )
        if self.edition == "ENTERPRISE" and perf:
            fail(
                "database.tier",
                self.tier,
                'a "db-perf-optimized-*" tier needs database.edition = "ENTERPRISE_PLUS"',
            )
        check_int("database.disk_size_gb", self.disk_size_gb, 10, 65536)
        if not isinstance(self.extensions, tuple):
            fail("database.extensions", self.extensions, "must be a list of extension names")
        for ext in self.extensions:
            if not isinstance(ext, str) or not EXTENSION_RE.match(ext):
                fail(
                    "database.extensions",
                    ext,
                    "extension names are lowercase letters, digits, '_' or '-' (e.g. \"pg_trgm\")",
                )
        if len(set(self.extensions)) != len(self.extensions):
            fail("database.extensions", list(self.extensions), "list each extension once")
        if self.shared_instance is not None:
            check_str("database.shared_instance", self.shared_instance)
            if not SQL_INSTANCE_RE.match(self.shared_instance):
                fail(
                    "database.shared_instance",
                    self.shared_instance,
                    "a Cloud SQL instance name is 1-84 lowercase letters, digits or hyphens, "
                    "starting with a letter and not ending with a hyphen",
                )
        check_bool("database.backups", self.backups)
        check_bool("database.deletion_protection", self.deletion_protection)


@dataclass(frozen=True)
class MediaConfig:
    """The media bucket. location None means the deployment's region (lowest latency)."""

    location: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.location is not None:
            check_storage_location("media.location", self.location)


@dataclass(frozen=True)
class SuperuserConfig:
    """The Django superuser the migrate job creates if missing (its password is a secret)."""

    username: str = "admin"
    _: KW_ONLY
    email: str = "admin@example.com"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not isinstance(self.username, str) or not USERNAME_RE.match(self.username):
            fail(
                "superuser.username",
                self.username,
                "Django usernames are 1-150 letters, digits or @ . + - _",
            )
        if not isinstance(self.email, str) or "@" not in self.email or " " in self.email:
            fail("superuser.email", self.email, 'use an email address such as "you@example.com"')


@dataclass(frozen=True)
class ProbeConfig:
    """Cloud Run startup and liveness probes (HTTP GET on path). Startup is generous because
    the first start of a revision may wait on the Cloud SQL socket."""

    path: str = "/health/"
    _: KW_ONLY
    startup_initial_delay: int = 90
    startup_period: int = 10
    startup_timeout: int = 5
    startup_failure_threshold: int = 12
    liveness_period: int = 30
    liveness_timeout: int = 5
    liveness_failure_threshold: int = 3

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_str("probes.path", self.path)
        if not self.path.startswith("/") or " " in self.path:
            fail("probes.path", self.path, 'use a URL path starting with "/" (e.g. "/health/")')
        check_int("probes.startup_initial_delay", self.startup_initial_delay, 0, 240)
        for kind in ("startup", "liveness"):
            period = getattr(self, f"{kind}_period")
            timeout = getattr(self, f"{kind}_timeout")
            check_int(f"probes.{kind}_period", period, 1, 240)
            check_int(f"probes.{kind}_timeout", timeout, 1, 240)
            if timeout > period:
                fail(
                    f"probes.{kind}_timeout",
                    timeout,
                    f"must not exceed probes.{kind}_period ({period})",
                )
            check_int(
                f"probes.{kind}_failure_threshold",
                getattr(self, f"{kind}_failure_threshold"),
                1,
                1000,
            )
        window = self.startup_period * self.startup_failure_threshold
        if window > 240:
            fail(
                "probes.startup_failure_threshold",
                self.startup_failure_threshold,
                f"Cloud Run allows startup_period x startup_failure_threshold <= 240 s "
                f"(here {window} s): lower one of them",
            )


def _check_packages(field_name: str, value: object) -> None:
    if not isinstance(value, tuple):
        fail(field_name, value, 'must be a list of Debian package names (e.g. ["libgdal-dev"])')
    for pkg in value:
        if not isinstance(pkg, str) or not APT_PACKAGE_RE.match(pkg):
            fail(
                field_name,
                pkg,
                "Debian package names are 2 or more lowercase letters, digits, '+', '-' or '.', "
                'starting with a letter or digit (e.g. "libgdal-dev")',
            )
    if len(set(value)) != len(value):
        fail(field_name, list(value), "list each package once")


@dataclass(frozen=True)
class BuildConfig:
    """Extra Debian packages for the image, passed to Cloud Build as the Dockerfile's build
    args: apt_packages to the builder stage (BUILD_APT_PACKAGES: headers and tools to build the
    project's wheels), runtime_apt_packages to the final stage (RUNTIME_APT_PACKAGES: shared
    libraries they need at run time). Part of the image tag: changing them builds a new image."""

    apt_packages: tuple[str, ...] = ()
    _: KW_ONLY
    runtime_apt_packages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("apt_packages", "runtime_apt_packages"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        _check_packages("build.apt_packages", self.apt_packages)
        _check_packages("build.runtime_apt_packages", self.runtime_apt_packages)


@dataclass(frozen=True)
class MonitoringConfig:
    """An uptime check on the service's health path (probes.path) and an alert policy on it,
    notifying alert_email when set. Off by default: it costs money past a free allotment and
    needs a public service; enabled turns it on, alert_email alone is refused (say which)."""

    enabled: bool = False
    _: KW_ONLY
    alert_email: str | None = None
    period: int = 300  # seconds between checks from each checker location

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_bool("monitoring.enabled", self.enabled)
        if self.alert_email is not None:
            check_str("monitoring.alert_email", self.alert_email)
            if not EMAIL_RE.match(self.alert_email):
                fail(
                    "monitoring.alert_email",
                    self.alert_email,
                    'use an email address such as "ops@example.com"',
                )
            if not self.enabled:
                fail(
                    "monitoring.alert_email",
                    self.alert_email,
                    "monitoring is off: set monitoring.enabled = true to get alerts, or remove "
                    "alert_email",
                )
        if self.period not in UPTIME_PERIODS or isinstance(self.period, bool):
            fail(
                "monitoring.period",
                self.period,
                "Cloud Monitoring checks every 60, 300, 600 or 900 seconds: use one of those",
            )


@dataclass(frozen=True)
class CiConfig:
    """Deploy on push (``[ci]``, docs/ci.md): a Cloud Build trigger on pushes to ``branch`` of
    the GitHub repository ``github`` (OWNER/REPO) whose build runs `djdeploy up` as a deployer
    service account of the tenant's own."""

    github: str
    _: KW_ONLY
    branch: str = "main"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_str("ci.github", self.github)
        if not GITHUB_REPO_RE.match(self.github):
            fail(
                "ci.github",
                self.github,
                'give the GitHub repository as OWNER/REPO, e.g. "acme/site"',
            )
        check_str("ci.branch", self.branch)
        if not BRANCH_RE.match(self.branch) or ".." in self.branch:
            fail("ci.branch", self.branch, 'give the branch a push deploys from, e.g. "main"')


@dataclass(frozen=True)
class CronEntry:
    """One scheduled management command (a ``[[cron]]`` table): Cloud Scheduler runs a Cloud Run
    job that runs ``command`` on ``schedule`` (unix-cron) in ``time_zone`` (IANA)."""

    name: str
    _: KW_ONLY
    schedule: str
    command: tuple[str, ...]
    time_zone: str = "Etc/UTC"

    def __post_init__(self) -> None:
        if isinstance(self.command, str):  # "clearsessions --verbosity 2"
            object.__setattr__(self, "command", tuple(shlex.split(self.command)))
        elif isinstance(self.command, Sequence):
            object.__setattr__(self, "command", tuple(self.command))
        self.validate()

    @property
    def where(self) -> str:
        return f"cron.{self.name}" if isinstance(self.name, str) else "cron"

    def validate(self) -> None:
        check_str("cron.name", self.name)
        if not CRON_NAME_RE.match(self.name):
            fail(
                "cron.name",
                self.name,
                "use 1-20 lowercase letters, digits or hyphens, starting with a letter "
                '(e.g. "clearsessions")',
            )
        check_str(f"{self.where}.schedule", self.schedule)
        problem = cron_problem(self.schedule)
        if problem is not None:
            fail(f"{self.where}.schedule", self.schedule, problem)
        check_str(f"{self.where}.time_zone", self.time_zone)
        if self.time_zone not in _time_zones():
            fail(
                f"{self.where}.time_zone",
                self.time_zone,
                'use an IANA time zone such as "Etc/UTC", "Europe/Paris" or "America/New_York"',
            )
        if not isinstance(self.command, tuple):
            fail(f"{self.where}.command", self.command, 'use a list such as ["clearsessions"]')
        check_cron_command(f"{self.where}.command", self.command)


@functools.cache
def _time_zones() -> set[str]:
    """The IANA zone names this Python knows (the system's database, else tzdata); read once:
    it walks the zone directory."""
    return zoneinfo.available_timezones()


#: the env var the worker's broker URL is handed to the app as ([worker] broker_secret)
BROKER_ENV = "CELERY_BROKER_URL"
#: with ``broker = "redis"``, the instance's URL is also handed to the app as this (a cache)
REDIS_ENV = "REDIS_URL"
#: ``[worker] broker``: the one broker djdeploy creates
REDIS = "redis"
#: ``redis_tier`` -> Memorystore's tier (gcloud's --tier names); Basic: one node, no replica
REDIS_TIERS = {"basic": "BASIC", "standard": "STANDARD_HA"}
#: Memorystore for Redis capacity, GiB (Basic and Standard tiers)
REDIS_MEMORY_GB = (1, 300)


@dataclass(frozen=True)
class WorkerConfig:
    """A background worker (``[worker]``): a Cloud Run worker pool running ``command`` in the
    service's image, env, secrets and volumes, ``instances`` instances, no ingress. With
    ``broker_secret``, the Secret Manager secret holding the broker URL becomes BROKER_ENV;
    with ``broker = "redis"``, a Memorystore for Redis instance djdeploy creates
    (``redis_tier``, ``redis_memory_gb``, ``redis_auth``) is the broker, its URL (in a secret)
    BROKER_ENV and REDIS_ENV."""

    command: tuple[str, ...]
    _: KW_ONLY
    cpu: str = "1"
    memory: str = "512Mi"
    instances: int = 1
    broker_secret: str | None = None
    broker: str | None = None  # "redis": djdeploy creates the broker
    redis_tier: str = "basic"
    redis_memory_gb: int = 1
    redis_auth: bool = True  # Memorystore's AUTH: clients need the instance's AUTH string

    @property
    def redis(self) -> bool:
        """Whether djdeploy creates a Memorystore for Redis instance as the broker."""
        return self.broker == REDIS

    def __post_init__(self) -> None:
        if isinstance(self.command, str):  # "celery -A proj worker -l info"
            object.__setattr__(self, "command", tuple(shlex.split(self.command)))
        elif isinstance(self.command, Sequence):
            object.__setattr__(self, "command", tuple(self.command))
        self.validate()

    def validate(self) -> None:
        if (
            not isinstance(self.command, tuple)
            or not self.command
            or not all(isinstance(p, str) and p for p in self.command)
        ):
            fail(
                "worker.command",
                self.command,
                'give the command the worker runs, e.g. "celery -A proj worker -l info"',
            )
        _check_size("worker", self.cpu, self.memory)
        check_int("worker.instances", self.instances, 0, 100)
        if self.broker_secret is not None and (
            not isinstance(self.broker_secret, str) or not SECRET_NAME_RE.match(self.broker_secret)
        ):
            fail(
                "worker.broker_secret",
                self.broker_secret,
                "a Secret Manager secret id is 1-255 letters, digits, '-' or '_'",
            )
        self._validate_broker()

    def _validate_broker(self) -> None:
        if self.broker is not None and self.broker != REDIS:
            fail(
                "worker.broker",
                self.broker,
                f'use "{REDIS}" (djdeploy creates a Memorystore for Redis instance), or leave it '
                "out and name your own broker URL's secret in worker.broker_secret",
            )
        if self.redis and self.broker_secret is not None:
            fail(
                "worker.broker_secret",
                self.broker_secret,
                f'worker.broker = "{REDIS}" creates the broker: remove broker_secret, or remove '
                "broker to use the URL in that secret",
            )
        check_choice("worker.redis_tier", self.redis_tier, tuple(REDIS_TIERS))
        lo, hi = REDIS_MEMORY_GB
        check_int("worker.redis_memory_gb", self.redis_memory_gb, lo, hi)
        check_bool("worker.redis_auth", self.redis_auth)
        if not self.redis:
            defaults: tuple[tuple[str, object], ...] = (
                ("redis_tier", "basic"),
                ("redis_memory_gb", 1),
                ("redis_auth", True),
            )
            for key, default in defaults:
                if getattr(self, key) != default:
                    fail(
                        f"worker.{key}",
                        getattr(self, key),
                        f'it configures the Redis instance of worker.broker = "{REDIS}": set that, '
                        f"or remove {key}",
                    )
