"""What to deploy: the frozen Config, how it is loaded, and every resource name derived from it.

Loading merges, lowest to highest: defaults < file (``djdeploy.toml`` in the working directory,
else ``[tool.djdeploy]`` in its ``pyproject.toml``) < ``DJDEPLOY_*`` environment variables <
flags. Validation runs when a Config is built, so a bad Config cannot exist and every error
surfaces before any API call. Resource names and labels derive here and nowhere else.

This module runs on the ``--help`` and bad-input paths: it must import nothing from google.*
and nothing heavy.
"""

from __future__ import annotations

import configparser
import dataclasses
import difflib
import hashlib
import keyword
import os
import re
import tomllib
import typing
from collections.abc import Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from deployer.contract import CONTRACT_NAMES
from deployer.errors import ConfigError
from deployer.regions import CLOUD_RUN_REGIONS

__all__ = [
    "BuildConfig",
    "Config",
    "DatabaseConfig",
    "FrozenDict",
    "MediaConfig",
    "Names",
    "ProbeConfig",
    "SecretRef",
    "ServiceConfig",
    "SuperuserConfig",
    "VpcConfig",
    "load_config",
    "load_project_and_region",
]

K = TypeVar("K")
V = TypeVar("V")

EMULATOR_PROJECT = "djdeploy-demo"
CONFIG_FILE = "djdeploy.toml"
RESERVED_LABELS = ("managed-by", "djdeploy-tenant", "djdeploy-app")
# Set by Cloud Run itself; a service or job that sets them is refused.
CLOUD_RUN_RESERVED_ENV = frozenset(
    {
        "PORT",
        "K_SERVICE",
        "K_REVISION",
        "K_CONFIGURATION",
        "CLOUD_RUN_JOB",
        "CLOUD_RUN_EXECUTION",
        "CLOUD_RUN_TASK_INDEX",
        "CLOUD_RUN_TASK_ATTEMPT",
        "CLOUD_RUN_TASK_COUNT",
    }
)


# --------------------------------------------------------------------------- helpers


class FrozenDict(dict[K, V]):
    """A dict that refuses mutation and hashes by content.

    A real dict subclass (not a Mapping) so it goes straight into JSON bodies and proto
    constructors; immutable and hashable so the frozen dataclasses holding it stay so.
    """

    def _immutable(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("FrozenDict is immutable: build a new one (dict(x) | {...})")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _immutable
    __ior__ = _immutable  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"


def _show(value: object) -> str:
    """A value as the user typed it: strings in double quotes, the rest as-is."""
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _fail(field_name: str, value: object, rule: str) -> NoReturn:
    """Raise the one ConfigError shape: field, bad value, rule and fix."""
    err = ConfigError(f"{field_name} {_show(value)} is invalid: {rule}")
    err.field = field_name  # type: ignore[attr-defined]  # lets the loader say where it came from
    raise err


def _check_int(field_name: str, value: object, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(field_name, value, "must be a whole number")
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        _fail(field_name, value, f"must be {bound}")


def _check_str(field_name: str, value: object) -> str:
    if not isinstance(value, str):
        _fail(field_name, value, "must be a string")
    return value


def _check_bool(field_name: str, value: object) -> None:
    if not isinstance(value, bool):
        _fail(field_name, value, "must be true or false")


def _check_choice(field_name: str, value: object, choices: Iterable[str]) -> None:
    choices = list(choices)
    if value not in choices:
        _fail(field_name, value, "must be one of " + ", ".join(_show(c) for c in choices))


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


# --------------------------------------------------------------------------- rules

_TENANT_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,18}[a-z0-9])?$")
_APP_RE = re.compile(r"^[a-z][a-z0-9]{0,19}$")
_PROJECT_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_SA_ID_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_SERVICE_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,47}[a-z0-9])?$")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$")
_SQL_INSTANCE_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,82}[a-z0-9])?$")
_MEMORY_RE = re.compile(r"^([1-9][0-9]*)(Mi|Gi)$")
_EXTENSION_RE = re.compile(r"^[a-z_][a-z0-9_-]*$")
_ENV_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_SECRET_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,255}$")
_LABEL_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}$")
_RESOURCE_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$")  # network, subnet, connector
_LOCATION_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,40}$")
_USERNAME_RE = re.compile(r"^[\w.@+-]{1,150}$")
_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
_APT_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")  # Debian package names

CPUS = ("1", "2", "4", "6", "8")
# Cloud Run: memory allowed per CPU count, in MiB (min, max).
_MEMORY_FOR_CPU = {
    "1": (512, 4096),
    "2": (512, 8192),
    "4": (2048, 16384),
    "6": (4096, 24576),
    "8": (4096, 32768),
}
INGRESS = ("all", "internal", "internal-and-cloud-load-balancing")
EGRESS = ("private-ranges-only", "all-traffic")
EDITIONS = ("ENTERPRISE", "ENTERPRISE_PLUS")


def _memory_mib(value: str) -> int | None:
    m = _MEMORY_RE.match(value)
    if not m:
        return None
    return int(m.group(1)) * (1024 if m.group(2) == "Gi" else 1)


# --------------------------------------------------------------------------- dataclasses


def _check_secret_ref(secret: object, version: object, where: str) -> None:
    if not isinstance(secret, str) or not _SECRET_NAME_RE.match(secret):
        _fail(
            f"{where}.secret",
            secret,
            "a Secret Manager secret id is 1-255 letters, digits, '-' or '_'",
        )
    if not isinstance(version, str) or not (
        version == "latest" or (version.isdigit() and int(version) > 0)
    ):
        _fail(f"{where}.version", version, 'use "latest" or a version number such as "3"')


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
                _fail(
                    where, dict(value), 'use "name", "name:3" or {secret = "name", version = "3"}'
                )
            version = value.get("version", "latest")
            if isinstance(version, int) and not isinstance(version, bool):
                version = str(version)
            _check_secret_ref(value["secret"], version, where)
            return cls(value["secret"], version=version)
        _fail(where, value, 'use "name", "name:3" or {secret = "name", version = "3"}')


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
        if self.cpu not in CPUS:
            _fail(
                "service.cpu",
                self.cpu,
                "use one of " + ", ".join(_show(c) for c in CPUS) + " (fractional CPU needs "
                "Cloud Run's first-generation environment, which cannot mount the media bucket)",
            )
        _check_str("service.memory", self.memory)
        mib = _memory_mib(self.memory)
        if mib is None:
            _fail(
                "service.memory",
                self.memory,
                'use a size in Mi or Gi between 512Mi and 32Gi (e.g. "512Mi", "2Gi")',
            )
        lo, hi = _MEMORY_FOR_CPU[self.cpu]
        if mib < 512 or mib > 32768:
            _fail("service.memory", self.memory, "must be between 512Mi and 32Gi")
        if not lo <= mib <= hi:
            _fail(
                "service.memory",
                self.memory,
                f"with cpu {_show(self.cpu)} Cloud Run allows {lo}Mi to {hi}Mi: "
                "change service.memory or service.cpu",
            )
        _check_int("service.min_instances", self.min_instances, 0, 1000)
        _check_int("service.max_instances", self.max_instances, 1, 1000)
        if self.min_instances > self.max_instances:
            _fail(
                "service.min_instances",
                self.min_instances,
                f"must not exceed service.max_instances ({self.max_instances})",
            )
        _check_int("service.timeout_seconds", self.timeout_seconds, 1, 3600)
        _check_int("service.concurrency", self.concurrency, 1, 1000)
        _check_choice("service.ingress", self.ingress, INGRESS)
        _check_bool("service.public", self.public)


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
        for name in ("network", "subnetwork", "connector"):
            value = getattr(self, name)
            if value is None:
                continue
            _check_str(f"vpc.{name}", value)
            short = value.rsplit("/", 1)[-1]
            if not _RESOURCE_RE.match(short):
                _fail(
                    f"vpc.{name}",
                    value,
                    "use a resource name (lowercase letters, digits, hyphens) or its full path",
                )
        direct = self.network is not None or self.subnetwork is not None
        if self.connector is not None and direct:
            _fail(
                "vpc.connector",
                self.connector,
                "set either vpc.connector or vpc.network + vpc.subnetwork, not both",
            )
        if self.connector is None and (self.network is None or self.subnetwork is None):
            _fail(
                "vpc",
                {"network": self.network, "subnetwork": self.subnetwork},
                "set vpc.network and vpc.subnetwork (Direct VPC egress), or vpc.connector",
            )
        _check_choice("vpc.egress", self.egress, EGRESS)


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
        _check_str("database.tier", self.tier)
        if not self.tier.startswith("db-"):
            _fail(
                "database.tier",
                self.tier,
                'use a Cloud SQL tier such as "db-f1-micro" or "db-custom-2-7680"',
            )
        if self.version != "POSTGRES_15":
            _fail(
                "database.version",
                self.version,
                'only "POSTGRES_15" is supported (the container and db-init are tested on it)',
            )
        _check_choice("database.edition", self.edition, EDITIONS)
        perf = self.tier.startswith("db-perf-optimized-")
        if self.edition == "ENTERPRISE_PLUS" and not perf:
            _fail(
                "database.tier",
                self.tier,
                'edition ENTERPRISE_PLUS needs a "db-perf-optimized-N-*" tier',
            )
        if self.edition == "ENTERPRISE" and perf:
            _fail(
                "database.tier",
                self.tier,
                'a "db-perf-optimized-*" tier needs database.edition = "ENTERPRISE_PLUS"',
            )
        _check_int("database.disk_size_gb", self.disk_size_gb, 10, 65536)
        if not isinstance(self.extensions, tuple):
            _fail("database.extensions", self.extensions, "must be a list of extension names")
        for ext in self.extensions:
            if not isinstance(ext, str) or not _EXTENSION_RE.match(ext):
                _fail(
                    "database.extensions",
                    ext,
                    "extension names are lowercase letters, digits, '_' or '-' (e.g. \"pg_trgm\")",
                )
        if len(set(self.extensions)) != len(self.extensions):
            _fail("database.extensions", list(self.extensions), "list each extension once")
        if self.shared_instance is not None:
            _check_str("database.shared_instance", self.shared_instance)
            if not _SQL_INSTANCE_RE.match(self.shared_instance):
                _fail(
                    "database.shared_instance",
                    self.shared_instance,
                    "a Cloud SQL instance name is 1-84 lowercase letters, digits or hyphens, "
                    "starting with a letter and not ending with a hyphen",
                )
        _check_bool("database.backups", self.backups)
        _check_bool("database.deletion_protection", self.deletion_protection)


@dataclass(frozen=True)
class MediaConfig:
    """The media bucket. location None means the deployment's region (lowest latency)."""

    location: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.location is not None and (
            not isinstance(self.location, str) or not _LOCATION_RE.match(self.location)
        ):
            _fail(
                "media.location",
                self.location,
                'use a Cloud Storage location such as "europe-west1", "EU" or "US"',
            )


@dataclass(frozen=True)
class SuperuserConfig:
    """The Django superuser the migrate job creates if missing (its password is a secret)."""

    username: str = "admin"
    _: KW_ONLY
    email: str = "admin@example.com"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not isinstance(self.username, str) or not _USERNAME_RE.match(self.username):
            _fail(
                "superuser.username",
                self.username,
                "Django usernames are 1-150 letters, digits or @ . + - _",
            )
        if not isinstance(self.email, str) or "@" not in self.email or " " in self.email:
            _fail("superuser.email", self.email, 'use an email address such as "you@example.com"')


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
        _check_str("probes.path", self.path)
        if not self.path.startswith("/") or " " in self.path:
            _fail("probes.path", self.path, 'use a URL path starting with "/" (e.g. "/health/")')
        _check_int("probes.startup_initial_delay", self.startup_initial_delay, 0, 240)
        for kind in ("startup", "liveness"):
            period = getattr(self, f"{kind}_period")
            timeout = getattr(self, f"{kind}_timeout")
            _check_int(f"probes.{kind}_period", period, 1, 240)
            _check_int(f"probes.{kind}_timeout", timeout, 1, 240)
            if timeout > period:
                _fail(
                    f"probes.{kind}_timeout",
                    timeout,
                    f"must not exceed probes.{kind}_period ({period})",
                )
            _check_int(
                f"probes.{kind}_failure_threshold",
                getattr(self, f"{kind}_failure_threshold"),
                1,
                1000,
            )
        window = self.startup_period * self.startup_failure_threshold
        if window > 240:
            _fail(
                "probes.startup_failure_threshold",
                self.startup_failure_threshold,
                f"Cloud Run allows startup_period x startup_failure_threshold <= 240 s "
                f"(here {window} s): lower one of them",
            )


def _check_packages(field_name: str, value: object) -> None:
    if not isinstance(value, tuple):
        _fail(field_name, value, 'must be a list of Debian package names (e.g. ["libgdal-dev"])')
    for pkg in value:
        if not isinstance(pkg, str) or not _APT_PACKAGE_RE.match(pkg):
            _fail(
                field_name,
                pkg,
                "Debian package names are 2 or more lowercase letters, digits, '+', '-' or '.', "
                'starting with a letter or digit (e.g. "libgdal-dev")',
            )
    if len(set(value)) != len(value):
        _fail(field_name, list(value), "list each package once")


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
    secret_db_password: str
    secret_key: str
    secret_superuser_password: str
    labels: dict[str, str]  # a FrozenDict
    connection_name: str

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

    def service_url(self, project_number: str) -> str:
        """The service's deterministic URL, known before it exists (ALLOWED_HOSTS, CSRF)."""
        return f"https://{self.service}-{project_number}.{self.region}.run.app"

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
            secret_db_password=f"{prefix}-db-password",
            secret_key=f"{prefix}-secret-key",
            secret_superuser_password=f"{prefix}-superuser-password",
            labels=FrozenDict(labels),
            connection_name=f"{project}:{region}:{sql_instance}",
        )

    def validate(self) -> None:
        """Check every derived name against its resource's rules (a bug guard for the
        fixed parts; for user parts, it names what to change)."""
        for attr in ("service", "db_init_job", "migrate_job"):
            value = getattr(self, attr)
            if not _SERVICE_RE.match(value):
                _fail(
                    f"names.{attr}",
                    value,
                    "Cloud Run names are at most 49 lowercase letters, digits or hyphens: "
                    "shorten tenant or app",
                )
        for attr in ("bucket", "staging_bucket"):
            value = getattr(self, attr)
            if not _BUCKET_RE.match(value):
                _fail(
                    f"names.{attr}",
                    value,
                    "bucket names are 3-63 lowercase letters, digits, "
                    "'-' or '_', starting and ending with a letter or digit",
                )
            if value.startswith("goog") or "google" in value or "g00gle" in value:
                _fail(
                    f"names.{attr}",
                    value,
                    'Cloud Storage refuses names that start with "goog" '
                    'or contain "google": choose a project, tenant or app without it',
                )
        for attr in ("runtime_sa_id", "build_sa_id"):
            value = getattr(self, attr)
            if not _SA_ID_RE.match(value):
                _fail(
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


@dataclass(frozen=True)
class Config:
    """One deployment: a tenant's Django app in one project and region.

    Build it directly or with load_config(). Maps (env, secret_env, labels) may be given as
    plain dicts; they are stored as FrozenDicts. Validation runs on construction.
    """

    tenant: str
    _: KW_ONLY
    project: str
    region: str = "europe-west1"
    app: str = "django"
    source: Path | None = None  # None -> the bundled sample project (container/sample)
    settings_module: str | None = None  # None -> the container finds it from manage.py
    build: BuildConfig = field(default_factory=BuildConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    vpc: VpcConfig | None = None
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    env: Mapping[str, str] = field(default_factory=FrozenDict)
    secret_env: Mapping[str, SecretRef] = field(default_factory=FrozenDict)
    superuser: SuperuserConfig = field(default_factory=SuperuserConfig)
    probes: ProbeConfig = field(default_factory=ProbeConfig)
    labels: Mapping[str, str] = field(default_factory=FrozenDict)  # extra labels

    def __post_init__(self) -> None:
        for name in ("env", "secret_env", "labels"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                _fail(name, value, "must be a table of NAME = value")
            if not isinstance(value, FrozenDict):
                object.__setattr__(self, name, FrozenDict(value))
        if isinstance(self.source, str):
            object.__setattr__(self, "source", Path(self.source))
        self.validate()

    @cached_property
    def names(self) -> Names:
        """Every resource name of this deployment (computed once)."""
        return Names.derive(
            tenant=self.tenant,
            app=self.app,
            project=self.project,
            region=self.region,
            shared_instance=self.database.shared_instance,
            extra_labels=self.labels,
        )

    @property
    def media_location(self) -> str:
        """Where the media bucket lives: media.location, else the region."""
        return self.media.location or self.region

    def validate(self) -> None:
        """Raise ConfigError for the first rule broken (called on construction)."""
        _check_str("tenant", self.tenant)
        if not _TENANT_RE.match(self.tenant):
            example = re.sub(r"[^a-z0-9-]+", "-", self.tenant.lower()).strip("-")[:20]
            example = example if example and example[0].isalpha() else "demo-1"
            _fail(
                "tenant",
                self.tenant,
                "use 1-20 lowercase letters, digits or hyphens, starting with a letter "
                f'(e.g. "{example}")',
            )
        _check_str("app", self.app)
        if not _APP_RE.match(self.app):
            _fail(
                "app",
                self.app,
                "use 1-20 lowercase letters or digits, starting with a letter, no hyphens "
                '(names join tenant and app with "-", so a hyphen could make two '
                'deployments share names; e.g. "django")',
            )
        _check_str("project", self.project)
        if not _PROJECT_RE.match(self.project):
            _fail(
                "project",
                self.project,
                "a project id is 6-30 lowercase letters, digits or hyphens, starting with a "
                "letter and not ending with a hyphen (see `gcloud projects list`)",
            )
        _check_region(self.region)
        if self.source is not None:
            if not isinstance(self.source, Path):
                _fail("source", self.source, "must be a path")
            if not self.source.is_dir():
                _fail(
                    "source",
                    str(self.source),
                    "no such directory: point --source at your Django project's directory",
                )
            if not (self.source / "manage.py").is_file():
                raise _with_field(
                    ConfigError(
                        f'source "{self.source}" has no manage.py: '
                        "point --source at your Django project's directory"
                    ),
                    "source",
                )
        if self.settings_module is not None:
            _check_settings_module(self.settings_module)
        for sub in (
            self.build,
            self.service,
            self.database,
            self.media,
            self.superuser,
            self.probes,
        ):
            sub.validate()
        if self.vpc is not None:
            self.vpc.validate()
        self._validate_env()
        self._validate_labels()
        self.names.validate()

    def _validate_env(self) -> None:
        for key, value in self.env.items():
            _check_env_name(f"env.{key}", key)
            if not isinstance(value, str):
                # the value is not shown: env values can be sensitive
                raise _with_field(
                    ConfigError(
                        f'env.{key} is invalid: values must be strings (quote it: {key} = "...")'
                    ),
                    f"env.{key}",
                )
            if key in self.secret_env:
                raise _with_field(
                    ConfigError(
                        f'env.{key} is invalid: "{key}" is also in secret_env; keep only one'
                    ),
                    f"env.{key}",
                )
        for key, ref in self.secret_env.items():
            _check_env_name(f"secret_env.{key}", key)
            if not isinstance(ref, SecretRef):
                _fail(f"secret_env.{key}", ref, 'use SecretRef("name") or "name[:version]"')
            ref.validate(f"secret_env.{key}")

    def _validate_labels(self) -> None:
        if len(self.labels) > 64 - len(RESERVED_LABELS):
            _fail(
                "labels",
                f"{len(self.labels)} labels",
                f"at most {64 - len(RESERVED_LABELS)} extra labels (Google allows 64)",
            )
        for key, value in self.labels.items():
            if not isinstance(key, str) or not _LABEL_KEY_RE.match(key):
                _fail(
                    "labels",
                    key,
                    "label keys are 1-63 lowercase letters, digits, '_' or "
                    "'-', starting with a letter",
                )
            if key in RESERVED_LABELS or key.startswith("djdeploy-"):
                _fail(
                    "labels",
                    key,
                    '"managed-by" and "djdeploy-*" labels are set by djdeploy: rename it',
                )
            if not isinstance(value, str) or not _LABEL_VALUE_RE.match(value):
                _fail(
                    f"labels.{key}",
                    value,
                    "label values are 0-63 lowercase letters, digits, '_' or '-'",
                )


def _check_region(region: object) -> None:
    _check_str("region", region)
    if region not in CLOUD_RUN_REGIONS:
        close = difflib.get_close_matches(str(region), sorted(CLOUD_RUN_REGIONS), n=3, cutoff=0.8)
        hint = (
            ("did you mean " + ", ".join(_show(c) for c in close) + "?")
            if close
            else 'e.g. "europe-west1", "us-central1"'
        )
        _fail("region", region, f"not a Cloud Run region: {hint}")


def _check_settings_module(value: object) -> None:
    value = _check_str("settings_module", value)
    if not _MODULE_RE.match(value) or any(keyword.iskeyword(p) for p in value.split(".")):
        _fail(
            "settings_module",
            value,
            "use a dotted Python module path importable from the project root (e.g. "
            '"mysite.settings" or "config.settings.production")',
        )


def _with_field(err: ConfigError, field_name: str) -> ConfigError:
    err.field = field_name  # type: ignore[attr-defined]
    return err


def _check_env_name(where: str, key: object) -> None:
    if not isinstance(key, str) or not _ENV_NAME_RE.match(key):
        _fail(
            where,
            key,
            "env var names are uppercase letters, digits and '_', not starting "
            'with a digit (e.g. "SENTRY_DSN")',
        )
    if key == "DJANGO_PROJECT_SETTINGS":
        _fail(where, key, "djdeploy sets this variable itself: set settings_module instead")
    if key in CONTRACT_NAMES:
        _fail(
            where,
            key,
            "djdeploy sets this variable itself (see docs/container.md): choose another name",
        )
    if key in CLOUD_RUN_RESERVED_ENV or key.startswith("CLOUD_RUN_"):
        _fail(where, key, "Cloud Run sets this variable itself: choose another name")


# --------------------------------------------------------------------------- loading

_TABLES: dict[str, type] = {
    "build": BuildConfig,
    "service": ServiceConfig,
    "vpc": VpcConfig,
    "database": DatabaseConfig,
    "media": MediaConfig,
    "superuser": SuperuserConfig,
    "probes": ProbeConfig,
}
_MAPS = ("env", "secret_env", "labels")
_TOP = ("tenant", "project", "region", "app", "source", "settings_module")
_ENV_TOP = {f"DJDEPLOY_{k.upper()}": k for k in _TOP}
# DJDEPLOY_* variables that belong to the CLI, not to the configuration
CLI_ENV = frozenset({"DJDEPLOY_EMULATOR", "DJDEPLOY_ENDPOINT", "DJDEPLOY_CONFIG"})


def _table_fields(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


_FIELDS: dict[str, dict[str, Any]] = {t: _table_fields(c) for t, c in _TABLES.items()}
_ALL_KEYS: list[str] = [
    *_TOP,
    *_MAPS,
    *_TABLES,
    *(f"{t}.{f}" for t, fs in _FIELDS.items() for f in fs),
]


def _unknown(kind: str, name: str, known: Iterable[str], where: str) -> NoReturn:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    hint = f': did you mean "{close[0]}"?' if close else ""
    raise ConfigError(f'unknown {kind} "{name}" in {where}{hint}')


def _convert(dotted: str, value: Any, origin: str) -> Any:
    """A string from an env var or flag, converted to the field's type."""
    if not isinstance(value, str):
        return value
    table, _, name = dotted.partition(".")
    if not name:
        return value
    hint = _FIELDS[table][name]
    text = value.strip()
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(
                f"{origin} {_show(value)} is invalid: {dotted} must be a whole number"
            ) from None
    if hint is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{origin} {_show(value)} is invalid: {dotted} must be true or false")
    if typing.get_origin(hint) is tuple:
        return tuple(p.strip() for p in text.split(",") if p.strip())
    if text == "" and type(None) in typing.get_args(hint):
        return None
    return value


class _Layers:
    """Accumulates values by dotted key, remembering where each came from."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.origin: dict[str, str] = {}
        self.maps: dict[str, dict[str, Any]] = {m: {} for m in _MAPS}
        self.base: dict[str, Path] = {}  # directory a relative source resolves against

    def set(self, dotted: str, value: Any, origin: str) -> None:
        self.values[dotted] = value
        self.origin[dotted] = origin


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def load_file(path: Path) -> dict[str, Any]:
    """The djdeploy settings in a file: all of a djdeploy.toml, or [tool.djdeploy] of a
    pyproject.toml ({} when it has none)."""
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        tool = data.get("tool", {})
        section = tool.get("djdeploy", {}) if isinstance(tool, dict) else {}
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: [tool.djdeploy] must be a table")
        return section
    return data


def find_config_file(cwd: Path) -> Path | None:
    """djdeploy.toml in cwd, else cwd/pyproject.toml when it has [tool.djdeploy]."""
    own = cwd / CONFIG_FILE
    if own.is_file():
        return own
    pyproject = cwd / "pyproject.toml"
    if pyproject.is_file() and load_file(pyproject):
        return pyproject
    return None


def _apply_file(layers: _Layers, data: Mapping[str, Any], path: Path) -> None:
    where = str(path) if path.name != "pyproject.toml" else f"{path} [tool.djdeploy]"
    for key, value in data.items():
        if key in _TOP:
            layers.set(key, value, f"{key} in {where}")
            if key == "source":
                layers.base["source"] = path.parent
        elif key in _MAPS:
            if not isinstance(value, dict):
                raise ConfigError(f"{key} in {where} must be a table ([{key}])")
            for k, v in value.items():
                layers.maps[key][k] = (v, f"{key}.{k} in {where}")
        elif key in _TABLES:
            if not isinstance(value, dict):
                raise ConfigError(f"{key} in {where} must be a table ([{key}])")
            for k, v in value.items():
                if k not in _FIELDS[key]:
                    _unknown("key", f"{key}.{k}", _ALL_KEYS, where)
                layers.set(f"{key}.{k}", v, f"{key}.{k} in {where}")
        else:
            _unknown("key", key, _ALL_KEYS, where)


def _apply_environ(layers: _Layers, environ: Mapping[str, str], cwd: Path) -> None:
    tables = {f"DJDEPLOY_{t.upper()}_": t for t in _TABLES}
    for var, value in environ.items():
        if not var.startswith("DJDEPLOY_"):
            continue
        if var in _ENV_TOP:
            key = _ENV_TOP[var]
            layers.set(key, value, var)
            if key == "source":
                layers.base["source"] = cwd
            continue
        for head, table in tables.items():
            if var.startswith(head):
                name = var[len(head) :].lower()
                if name not in _FIELDS[table]:
                    known = [f"{head}{f.upper()}" for f in _FIELDS[table]]
                    _unknown("environment variable", var, known, "the environment")
                layers.set(f"{table}.{name}", _convert(f"{table}.{name}", value, var), var)
                break
        else:
            if var not in CLI_ENV:  # a typo must not silently fall back to a default
                known = sorted([*_ENV_TOP, *CLI_ENV, *(f"{h}<FIELD>" for h in tables)])
                _unknown("environment variable", var, known, "the environment")


def _pairs(key: str, value: Any) -> Iterable[tuple[str, Any]]:
    """A map flag given as a dict or as "K=V" strings."""
    if isinstance(value, Mapping):
        return value.items()
    if isinstance(value, str):
        value = [value]
    out = []
    for item in value:
        k, sep, v = str(item).partition("=")
        if not sep:
            raise ConfigError(f'{key} "{item}" is invalid: use NAME=value')
        out.append((k.strip(), v))
    return out


def _apply_flags(layers: _Layers, flags: Mapping[str, Any], cwd: Path) -> None:
    for key, value in flags.items():
        if value is None or key in ("config", "tenant"):
            continue
        origin = f"--{key}"
        if key in _TOP:
            layers.set(key, value, origin)
            if key == "source":
                layers.base["source"] = cwd
        elif key in _MAPS:
            for k, v in _pairs(key, value):
                layers.maps[key][k] = (v, f"{origin} {k}")
        elif "." in key and key.split(".", 1)[0] in _TABLES:
            table, name = key.split(".", 1)
            if name not in _FIELDS[table]:
                _unknown("flag", key, _ALL_KEYS, "the flags")
            layers.set(key, _convert(key, value, origin), origin)
        else:
            _unknown("flag", key, _ALL_KEYS, "the flags")


def _gcloud_project(environ: Mapping[str, str]) -> str | None:
    """The project gcloud would use, read from its config files without running gcloud."""
    if environ.get("CLOUDSDK_CORE_PROJECT"):
        return environ["CLOUDSDK_CORE_PROJECT"]
    if environ.get("CLOUDSDK_CONFIG"):
        root = Path(environ["CLOUDSDK_CONFIG"])
    elif os.name == "nt" and environ.get("APPDATA"):
        root = Path(environ["APPDATA"]) / "gcloud"
    else:
        home = environ.get("HOME")
        root = (Path(home) if home else Path.home()) / ".config" / "gcloud"
    name = environ.get("CLOUDSDK_ACTIVE_CONFIG_NAME")
    if not name:
        try:
            name = (root / "active_config").read_text().strip() or "default"
        except OSError:
            name = "default"
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(root / "configurations" / f"config_{name}", encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return None
    project = parser.get("core", "project", fallback="").strip()
    return project or None


def _resolve_project(layers: _Layers, environ: Mapping[str, str], emulator: bool) -> None:
    """Flag > DJDEPLOY_PROJECT > file > GOOGLE_CLOUD_PROJECT > gcloud config > emulator."""
    if "project" in layers.values:
        return  # flag, DJDEPLOY_PROJECT or the file (layered in that precedence)
    for var in ("GOOGLE_CLOUD_PROJECT",):
        if environ.get(var):
            layers.set("project", environ[var], var)
            return
    found = _gcloud_project(environ)
    if found:
        layers.set("project", found, "the gcloud config")
    elif emulator:
        layers.set("project", EMULATOR_PROJECT, "the emulator default")
    else:
        raise ConfigError(
            "no Google Cloud project: pass --project, set project in djdeploy.toml or "
            "DJDEPLOY_PROJECT, or run `gcloud config set project PROJECT_ID`"
        )


def _layers(*, cwd: Path, environ: Mapping[str, str], flags: Mapping[str, Any]) -> _Layers:
    layers = _Layers()
    explicit = flags.get("config") or environ.get("DJDEPLOY_CONFIG")
    if explicit:
        path = Path(explicit)
        path = path if path.is_absolute() else cwd / path
        if not path.is_file():
            raise ConfigError(f'config "{explicit}" is invalid: no such file')
        file: Path | None = path
    else:
        file = find_config_file(cwd)
    if file is not None:
        _apply_file(layers, load_file(file), file)
    _apply_environ(layers, environ, cwd)
    _apply_flags(layers, flags, cwd)
    return layers


def load_project_and_region(
    *, cwd: Path, environ: Mapping[str, str], flags: Mapping[str, Any], emulator: bool = False
) -> tuple[str, str]:
    """Project and region alone, for commands that span tenants (status with no --tenant)."""
    layers = _layers(cwd=cwd, environ=environ, flags=flags)
    _resolve_project(layers, environ, emulator)
    region = layers.values.get("region", "europe-west1")
    _check_region(region)
    return str(layers.values["project"]), str(region)


def load_config(
    *,
    tenant: str | None,
    cwd: Path,
    environ: Mapping[str, str],
    flags: Mapping[str, Any],
    emulator: bool = False,
) -> Config:
    """Build the Config from defaults < file < DJDEPLOY_* env < flags, and validate it.

    `tenant` is the --tenant flag (None: flags["tenant"], DJDEPLOY_TENANT, then the file).
    flags maps dotted keys ("region", "service.memory") to values; None means not given.
    Optional flags["config"] (or DJDEPLOY_CONFIG) names the config file explicitly.
    """
    layers = _layers(cwd=cwd, environ=environ, flags=flags)
    for given in (flags.get("tenant"), tenant):
        if given is not None:
            layers.set("tenant", given, "--tenant")
    if "tenant" not in layers.values:
        raise ConfigError(
            "no tenant: pass --tenant NAME, set DJDEPLOY_TENANT, or set tenant in djdeploy.toml"
        )
    _resolve_project(layers, environ, emulator)
    try:
        return _build(layers, cwd)
    except ConfigError as exc:
        origin = _origin_of(exc, layers)
        if origin and origin not in str(exc):
            raise ConfigError(f"{exc} (from {origin})") from None
        raise


def _origin_of(exc: ConfigError, layers: _Layers) -> str | None:
    name = getattr(exc, "field", None)
    if not name:
        return None
    if name in layers.origin:
        return layers.origin[name]
    table, _, key = name.partition(".")
    if table in layers.maps and key in layers.maps[table]:
        return str(layers.maps[table][key][1])
    key = key.partition(".")[0]
    if table in layers.maps and key in layers.maps[table]:
        return str(layers.maps[table][key][1])
    return None


def _build(layers: _Layers, cwd: Path) -> Config:
    top: dict[str, Any] = {}
    tables: dict[str, dict[str, Any]] = {t: {} for t in _TABLES}
    for dotted, value in layers.values.items():
        table, _, name = dotted.partition(".")
        if name:
            tables[table][name] = value
        else:
            top[dotted] = value
    kwargs: dict[str, Any] = dict(top)
    if kwargs.get("settings_module") == "":
        kwargs["settings_module"] = None  # an empty DJDEPLOY_SETTINGS_MODULE or flag: unset
    if "source" in kwargs and kwargs["source"] is not None:
        src = kwargs["source"]
        if not isinstance(src, str | Path):
            _fail("source", src, "must be a path")
        path = Path(src).expanduser()
        kwargs["source"] = (
            path if path.is_absolute() else layers.base.get("source", cwd) / path
        ).resolve()
    for table, cls in _TABLES.items():
        values = tables[table]
        if table == "vpc":
            if values:
                kwargs["vpc"] = _make(cls, values, table)
            continue
        kwargs[table] = _make(cls, values, table)
    kwargs["env"] = {k: v for k, (v, _) in layers.maps["env"].items()}
    kwargs["labels"] = {k: v for k, (v, _) in layers.maps["labels"].items()}
    kwargs["secret_env"] = {
        k: SecretRef.parse(v, where=f"secret_env.{k}")
        for k, (v, _) in layers.maps["secret_env"].items()
    }
    tenant = kwargs.pop("tenant")
    return Config(tenant, **kwargs)


def _make(cls: type, values: dict[str, Any], table: str) -> Any:
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**values)
