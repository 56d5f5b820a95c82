"""The frozen Config: one deployment, validated whole on construction (each table, the
cross-field rules, the derived names)."""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from functools import cached_property
from pathlib import Path

from djdeploy_container.djdeploy_runtime import discover

from deployer.config.names import Names
from deployer.config.rules import (
    APP_RE,
    LABEL_KEY_RE,
    LABEL_VALUE_RE,
    RESERVED_LABELS,
    TENANT_RE,
    FrozenDict,
    check_domains,
    check_env_name,
    check_project,
    check_region,
    check_settings_module,
    check_str,
    fail,
    with_field,
)
from deployer.config.schema import (
    BROKER_ENV,
    REDIS_ENV,
    BuildConfig,
    CiConfig,
    CronEntry,
    DatabaseConfig,
    MediaConfig,
    MonitoringConfig,
    ProbeConfig,
    SecretRef,
    ServiceConfig,
    SuperuserConfig,
    VpcConfig,
    WorkerConfig,
)
from deployer.errors import ConfigError

#: the network (and subnetwork) a project's default VPC has, and Memorystore's default
DEFAULT_NETWORK = "default"

NO_PROJECT = (
    'no project: pass Config(..., project="my-project") (only the emulator has a default, '
    "djdeploy-demo)"
)


def section(cls: type, values: Mapping[str, object], where: str) -> object:
    """A table given as a plain dict, as the file would give it: lists become tuples; an
    unknown key is refused with the closest known one."""
    known = [f.name for f in dataclasses.fields(cls) if f.name != "_"]
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = (
                f': did you mean "{where}.{close[0]}"?'
                if close
                else f" (known: {', '.join(known)})"
            )
            raise ConfigError(f'unknown key "{where}.{key}"{hint}')
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in values
        and f.name != "_"
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where} is invalid: it needs {', '.join(missing)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


@dataclass(frozen=True)
class Config:
    """One deployment: a tenant's Django app in one project and region.

    Build it directly or with load_config(). Every table may be given as a plain dict of its
    fields (``service={"memory": "1Gi"}``, ``cron=[{"name": ..., ...}]``, ``secret_env={"A":
    "name:3"}``), as in djdeploy.toml; maps are stored as FrozenDicts. Validation runs on
    construction. ``project`` may be left out only for the emulator (deployer.api puts in
    EMULATOR_PROJECT): on Google the API refuses a Config without one.
    """

    tenant: str
    _: KW_ONLY
    project: str = ""  # "": not given (the emulator's default project; required on Google)
    region: str = "europe-west1"
    app: str = "django"
    source: Path | None = None  # None -> the bundled sample project (container/sample)
    settings_module: str | None = None  # None -> the container finds it from manage.py
    domains: tuple[str, ...] = ()  # custom host names: ALLOWED_HOSTS, CSRF_TRUSTED_ORIGINS
    build: BuildConfig = field(default_factory=BuildConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    vpc: VpcConfig | None = None
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    env: Mapping[str, str] = field(default_factory=FrozenDict)
    secret_env: Mapping[str, SecretRef] = field(default_factory=FrozenDict)
    superuser: SuperuserConfig = field(default_factory=SuperuserConfig)
    probes: ProbeConfig = field(default_factory=ProbeConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    labels: Mapping[str, str] = field(default_factory=FrozenDict)  # extra labels
    cron: tuple[CronEntry, ...] = ()  # scheduled management commands ([[cron]])
    worker: WorkerConfig | None = None  # a background worker ([worker]); None: none
    ci: CiConfig | None = None  # deploy on push ([ci]); None: none
    #: the config file it was read from (load_config sets it): inside source, it is left out
    #: of the image like djdeploy.toml (archive.py), so a deploy-only edit builds nothing
    config_file: Path | None = None

    def __post_init__(self) -> None:
        for name, cls in _SECTIONS.items():
            value = getattr(self, name)
            if isinstance(value, Mapping):
                object.__setattr__(self, name, section(cls, value, name))
            elif not isinstance(value, cls) and not (name in _OPTIONAL and value is None):
                fail(name, value, f"use a {cls.__name__} or a dict of its fields")
        if isinstance(self.secret_env, Mapping):
            refs = {
                k: SecretRef.parse(v, where=f"secret_env.{k}")
                if isinstance(v, str | Mapping)
                else v
                for k, v in self.secret_env.items()
            }
            object.__setattr__(self, "secret_env", refs)
        if isinstance(self.cron, list | tuple):
            entries = [
                section(CronEntry, e, "cron") if isinstance(e, Mapping) else e for e in self.cron
            ]
            object.__setattr__(self, "cron", tuple(entries))
        for name in ("env", "secret_env", "labels"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                fail(name, value, "must be a table of NAME = value")
            if not isinstance(value, FrozenDict):
                object.__setattr__(self, name, FrozenDict(value))
        if isinstance(self.domains, list):
            object.__setattr__(self, "domains", tuple(self.domains))
        for name in ("source", "config_file"):
            if isinstance(getattr(self, name), str):
                object.__setattr__(self, name, Path(getattr(self, name)))
        self.validate()

    @cached_property
    def names(self) -> Names:
        """Every resource name of this deployment (computed once)."""
        if not self.project:
            raise ConfigError(NO_PROJECT)
        return Names.derive(
            tenant=self.tenant,
            app=self.app,
            project=self.project,
            region=self.region,
            shared_instance=self.database.shared_instance,
            extra_labels=self.labels,
        )

    @property
    def redis_broker(self) -> bool:
        """Whether the app's broker is a Redis instance djdeploy creates (``[worker] broker =
        "redis"``)."""
        return self.worker is not None and self.worker.redis

    @property
    def egress(self) -> VpcConfig | None:
        """The VPC egress of the service, the jobs and the worker: [vpc], else, with
        ``[worker] broker = "redis"``, Direct VPC egress on the project's ``default`` network
        and its ``default`` subnetwork (where Memorystore puts an instance by default)."""
        if self.vpc is None and self.redis_broker:
            return VpcConfig(DEFAULT_NETWORK, subnetwork=DEFAULT_NETWORK)
        return self.vpc

    @property
    def redis_network(self) -> str:
        """The network a Redis broker is authorized on: the egress network's full name."""
        network = self.egress.network if self.egress is not None else None
        network = network or DEFAULT_NETWORK
        if network.startswith("projects/"):
            return network
        return f"projects/{self.project}/global/networks/{network}"

    @property
    def media_location(self) -> str:
        """Where the media bucket lives: media.location, else the region."""
        return self.media.location or self.region

    def validate(self) -> None:
        """Raise ConfigError for the first rule broken (called on construction)."""
        check_str("tenant", self.tenant)
        if not TENANT_RE.match(self.tenant):
            example = re.sub(r"[^a-z0-9-]+", "-", self.tenant.lower()).strip("-")[:20]
            example = example if example and example[0].isalpha() else "demo-1"
            fail(
                "tenant",
                self.tenant,
                "use 1-20 lowercase letters, digits or hyphens, starting with a letter "
                f'(e.g. "{example}")',
            )
        check_str("app", self.app)
        if not APP_RE.match(self.app):
            fail(
                "app",
                self.app,
                "use 1-20 lowercase letters or digits, starting with a letter, no hyphens "
                '(names join tenant and app with "-", so a hyphen could make two '
                'deployments share names; e.g. "django")',
            )
        if self.project != "":
            check_project(self.project)
        check_region(self.region)
        if self.source is not None:
            if not isinstance(self.source, Path):
                fail("source", self.source, "must be a path")
            if not self.source.is_dir():
                fail(
                    "source",
                    str(self.source),
                    "no such directory: point --source at your Django project's directory",
                )
            try:  # the container's rule: manage.py at the root, or in src/ (a src layout)
                discover.project_dir(self.source)
            except discover.DiscoveryError:
                raise with_field(
                    ConfigError(
                        f'source "{self.source}" has no manage.py (nor src/manage.py): '
                        "point --source at your Django project's directory"
                    ),
                    "source",
                ) from None
        if self.config_file is not None and not isinstance(self.config_file, Path):
            fail("config_file", self.config_file, "must be a path")
        if self.settings_module is not None:
            check_settings_module(self.settings_module)
        check_domains(self.domains)
        for sub in (
            self.build,
            self.service,
            self.database,
            self.media,
            self.superuser,
            self.probes,
            self.monitoring,
        ):
            sub.validate()
        if self.vpc is not None:
            self.vpc.validate()
            self._validate_vpc_region(self.vpc)
        if self.worker is not None:
            self.worker.validate()
            self._validate_worker(self.worker)
        if self.ci is not None:
            self.ci.validate()
        self._validate_env()
        self._validate_labels()
        self._validate_monitoring()
        self._validate_cron()
        if self.project:
            self.names.validate()

    def _validate_cron(self) -> None:
        seen: set[str] = set()
        for entry in self.cron:
            if not isinstance(entry, CronEntry):
                fail("cron", entry, "each entry is a [[cron]] table (name, schedule, command)")
            entry.validate()
            if entry.name in seen:
                fail("cron.name", entry.name, "two [[cron]] entries have this name: rename one")
            seen.add(entry.name)

    @property
    def app_secret_env(self) -> Mapping[str, SecretRef]:
        """Every env var the app reads from a user's secret: secret_env, and the worker's
        broker URL (BROKER_ENV, the latest enabled version of worker.broker_secret)."""
        if self.worker is None or self.worker.broker_secret is None:
            return self.secret_env
        return {**self.secret_env, BROKER_ENV: SecretRef(self.worker.broker_secret)}

    def _validate_worker(self, worker: WorkerConfig) -> None:
        """The broker secret becomes BROKER_ENV, a Redis broker BROKER_ENV and REDIS_ENV: env
        or secret_env may not set them too. A Redis broker is reached over Direct VPC egress."""
        names: tuple[str, ...]
        if worker.broker_secret is not None:
            setter, names = "worker.broker_secret", (BROKER_ENV,)
        elif worker.redis:
            setter, names = "worker.broker", (BROKER_ENV, REDIS_ENV)
        else:
            return
        for table in ("env", "secret_env"):
            for name in names:
                if name in getattr(self, table):
                    raise with_field(  # the value is not shown: it may hold a password
                        ConfigError(
                            f"{table}.{name} is invalid: {setter} sets {name}; remove it "
                            f"from [{table}] or remove {setter}"
                        ),
                        f"{table}.{name}",
                    )
        if worker.redis and self.vpc is not None and self.vpc.connector is not None:
            fail(
                "vpc.connector",
                self.vpc.connector,
                'worker.broker = "redis" is reached over Direct VPC egress: set vpc.network + '
                "vpc.subnetwork instead, or remove [vpc] to use the default network",
            )

    def _validate_monitoring(self) -> None:
        """Uptime checkers call the service from the internet, without credentials."""
        if not self.monitoring.enabled:
            return
        if not self.service.public:
            fail(
                "monitoring.enabled",
                True,
                "the uptime check calls the service without credentials, so it needs "
                "service.public = true (or turn monitoring off)",
            )
        if self.service.ingress != "all":
            fail(
                "monitoring.enabled",
                True,
                f"the uptime check calls the service from the internet, which ingress "
                f'"{self.service.ingress}" refuses: set service.ingress = "all" (or turn '
                "monitoring off)",
            )

    def _validate_vpc_region(self, vpc: VpcConfig) -> None:
        """A subnetwork or connector given by its full path names a region: the service's."""
        for name, region in vpc.regions().items():
            if region != self.region:
                fail(
                    f"vpc.{name}",
                    getattr(vpc, name),
                    f"it is in {region}, the service in {self.region}: Cloud Run reaches a VPC "
                    f"only through a {name} in its own region",
                )

    def _validate_env(self) -> None:
        for key, value in self.env.items():
            check_env_name(f"env.{key}", key)
            if not isinstance(value, str):
                # the value is not shown: env values can be sensitive
                raise with_field(
                    ConfigError(
                        f'env.{key} is invalid: values must be strings (quote it: {key} = "...")'
                    ),
                    f"env.{key}",
                )
            if key in self.secret_env:
                raise with_field(
                    ConfigError(
                        f'env.{key} is invalid: "{key}" is also in secret_env; keep only one'
                    ),
                    f"env.{key}",
                )
        for key, ref in self.secret_env.items():
            check_env_name(f"secret_env.{key}", key)
            if not isinstance(ref, SecretRef):
                fail(f"secret_env.{key}", ref, 'use SecretRef("name") or "name[:version]"')
            ref.validate(f"secret_env.{key}")

    def _validate_labels(self) -> None:
        if len(self.labels) > 64 - len(RESERVED_LABELS):
            fail(
                "labels",
                f"{len(self.labels)} labels",
                f"at most {64 - len(RESERVED_LABELS)} extra labels (Google allows 64)",
            )
        for key, value in self.labels.items():
            if not isinstance(key, str) or not LABEL_KEY_RE.match(key):
                fail(
                    "labels",
                    key,
                    "label keys are 1-63 lowercase letters, digits, '_' or "
                    "'-', starting with a letter",
                )
            if key in RESERVED_LABELS or key.startswith("djdeploy-"):
                fail(
                    "labels",
                    key,
                    '"managed-by" and "djdeploy-*" labels are set by djdeploy: rename it',
                )
            if not isinstance(value, str) or not LABEL_VALUE_RE.match(value):
                fail(
                    f"labels.{key}",
                    value,
                    "label values are 0-63 lowercase letters, digits, '_' or '-'",
                )


#: the tables a Config takes as their dataclass or as a plain dict of its fields
_SECTIONS: dict[str, type] = {
    "build": BuildConfig,
    "service": ServiceConfig,
    "vpc": VpcConfig,
    "database": DatabaseConfig,
    "media": MediaConfig,
    "superuser": SuperuserConfig,
    "probes": ProbeConfig,
    "monitoring": MonitoringConfig,
    "worker": WorkerConfig,
    "ci": CiConfig,
}
#: the tables that may be absent (None: not configured)
_OPTIONAL = ("vpc", "worker", "ci")
