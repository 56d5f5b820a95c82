"""Config: validation rules, name derivation, loading precedence, project resolution."""

from __future__ import annotations

import dataclasses
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from deployer.config import (
    BuildConfig,
    Config,
    DatabaseConfig,
    FrozenDict,
    MediaConfig,
    Names,
    ProbeConfig,
    SecretRef,
    ServiceConfig,
    SuperuserConfig,
    VpcConfig,
    load_config,
    load_project_and_region,
    misspelt_variables,
)
from deployer.emulator.testing import EmulatorHandle
from deployer.errors import ConfigError

PROJECT = "my-proj-123"


def make(**kw: Any) -> Config:
    tenant = kw.pop("tenant", "demo")
    kw.setdefault("project", PROJECT)
    return Config(tenant, **kw)


@pytest.fixture
def django_dir(tmp_path: Path) -> Path:
    d = tmp_path / "mysite"
    d.mkdir()
    (d / "manage.py").write_text("")
    return d


# --------------------------------------------------------------------------- validation

GOOD: list[tuple[str, dict[str, Any]]] = [
    ("tenant", {"tenant": "a"}),
    ("tenant", {"tenant": "demo-1"}),
    ("tenant", {"tenant": "a" * 20}),
    ("app", {"app": "web2"}),
    ("project", {"project": "abcdef"}),
    ("project", {"project": "a" * 30}),
    ("region", {"region": "us-central1"}),
    ("cpu", {"service": ServiceConfig("2", memory="8Gi")}),
    ("memory", {"service": ServiceConfig(memory="1Gi")}),
    ("memory", {"service": ServiceConfig("8", memory="32Gi")}),
    ("instances", {"service": ServiceConfig(min_instances=3, max_instances=3)}),
    ("ingress", {"service": ServiceConfig(ingress="internal-and-cloud-load-balancing")}),
    ("vpc", {"vpc": VpcConfig("default", subnetwork="default")}),
    (
        "vpc",
        {"vpc": VpcConfig(connector="projects/host-proj/locations/europe-west1/connectors/c1")},
    ),
    (
        "vpc",
        {
            "vpc": VpcConfig(
                "projects/host-proj/global/networks/shared",
                subnetwork="projects/host-proj/regions/europe-west1/subnetworks/run",
            )
        },
    ),
    ("vpc", {"vpc": VpcConfig(connector="c1", egress="all-traffic")}),
    ("tier", {"database": DatabaseConfig("db-custom-2-7680")}),
    ("tier", {"database": DatabaseConfig("db-custom-1-3840")}),
    ("tier", {"database": DatabaseConfig("db-custom-2-13312")}),
    ("tier", {"database": DatabaseConfig("db-custom-96-638976")}),
    ("tier", {"database": DatabaseConfig("db-g1-small")}),
    ("edition", {"database": DatabaseConfig("db-perf-optimized-N-2", edition="ENTERPRISE_PLUS")}),
    ("extensions", {"database": DatabaseConfig(extensions=("uuid-ossp", "postgis"))}),
    ("extensions", {"database": DatabaseConfig(extensions=())}),
    ("shared", {"database": DatabaseConfig(shared_instance="shared-pg-1")}),
    ("media", {"media": MediaConfig("EU")}),
    ("media", {"media": MediaConfig("us")}),
    ("media", {"media": MediaConfig("NAM4")}),
    ("media", {"media": MediaConfig("eur4")}),
    ("media", {"media": MediaConfig("europe-west4")}),
    ("media", {"media": MediaConfig("US-CENTRAL1")}),
    ("env", {"env": {"SENTRY_ENV": "prod", "_X1": ""}}),
    ("secret_env", {"secret_env": {"SENTRY_DSN": SecretRef("sentry-dsn", version="4")}}),
    ("labels", {"labels": {"team": "web", "cost_center": "", "env": "prod-1"}}),
    ("superuser", {"superuser": SuperuserConfig("root.user", email="a@b")}),
    ("probes", {"probes": ProbeConfig("/", startup_period=20, startup_failure_threshold=12)}),
    ("settings_module", {"settings_module": "mysite.settings"}),
    ("settings_module", {"settings_module": "config.settings.production"}),
    ("settings_module", {"settings_module": "_settings2"}),
    ("build", {"build": BuildConfig(["libgdal-dev", "g++", "libxml2.0"])}),
    ("build", {"build": BuildConfig(runtime_apt_packages=["libgdal32", "libpq5"])}),
]


@pytest.mark.parametrize(("case", "kw"), GOOD, ids=[c for c, _ in GOOD])
def test_good_values(case: str, kw: dict[str, Any]) -> None:
    make(**kw).validate()


def test_source_with_manage_py(django_dir: Path) -> None:
    assert make(source=django_dir).source == django_dir


BAD_TOP: list[tuple[str, dict[str, Any]]] = [
    ("tenant", {"tenant": "Demo_1"}),
    ("tenant", {"tenant": ""}),
    ("tenant", {"tenant": "1demo"}),
    ("tenant", {"tenant": "demo-"}),
    ("tenant", {"tenant": "a" * 21}),
    ("app", {"app": "my-app"}),
    ("app", {"app": "Django"}),
    ("app", {"app": "a" * 21}),
    ("project", {"project": "short"}),
    ("project", {"project": "My-Project"}),
    ("project", {"project": "proj-ect-"}),
    ("project", {"project": "a" * 31}),
    ("region", {"region": "europe-west99"}),
    ("region", {"region": "mars-north1"}),
    ("region", {"region": "Europe-West1"}),
    ("region", {"region": "EU"}),
    ("region", {"region": "europe-west1-b"}),
    ("region", {"region": 1}),
    (
        "vpc.subnetwork",
        {"vpc": VpcConfig("n", subnetwork="projects/host-proj/regions/us-east1/subnetworks/s")},
    ),
    ("vpc.connector", {"vpc": VpcConfig(connector="projects/my-proj/locations/moon/connectors/c")}),
    ("env.lower", {"env": {"lower": "x"}}),
    ("env.1ABC", {"env": {"1ABC": "x"}}),
    ("env.DB_NAME", {"env": {"DB_NAME": "x"}}),
    ("env.SECRET_KEY", {"env": {"SECRET_KEY": "x"}}),
    ("env.PORT", {"env": {"PORT": "8000"}}),
    ("env.CLOUD_RUN_FOO", {"env": {"CLOUD_RUN_FOO": "x"}}),
    ("env.DEBUG", {"env": {"DEBUG": 1}}),
    ("env.DSN", {"env": {"DSN": "x"}, "secret_env": {"DSN": SecretRef("dsn")}}),
    ("secret_env.DB_PASSWORD", {"secret_env": {"DB_PASSWORD": SecretRef("x")}}),
    ("secret_env.DSN", {"secret_env": {"DSN": 29}}),  # a str is parsed: "dsn", "dsn:3"
    ("labels", {"labels": {"Team": "x"}}),
    ("labels", {"labels": {"managed-by": "me"}}),
    ("labels", {"labels": {"djdeploy-tenant": "other"}}),
    ("labels.team", {"labels": {"team": "Web"}}),
    ("labels.team", {"labels": {"team": "x" * 64}}),
    ("labels", {"labels": {f"k{i}": "v" for i in range(62)}}),
    ("source", {"source": Path("/nonexistent/dir")}),
    ("names.bucket", {"project": "my-google-proj"}),
    ("names.bucket", {"project": "goog-proj-1"}),
    ("settings_module", {"settings_module": "my-site.settings"}),
    ("settings_module", {"settings_module": "mysite/settings.py"}),
    ("settings_module", {"settings_module": "mysite.settings."}),
    ("settings_module", {"settings_module": ".settings"}),
    ("settings_module", {"settings_module": "1site.settings"}),
    ("settings_module", {"settings_module": "mysite.class"}),
    ("settings_module", {"settings_module": ""}),
    ("settings_module", {"settings_module": 3}),
    ("env.DJANGO_PROJECT_SETTINGS", {"env": {"DJANGO_PROJECT_SETTINGS": "mysite.settings"}}),
]


@pytest.mark.parametrize(
    ("field", "kw"), BAD_TOP, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_TOP)]
)
def test_bad_config_names_the_field(field: str, kw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as exc:
        make(**kw)
    assert str(exc.value).startswith(field + " "), str(exc.value)
    assert "is invalid" in str(exc.value)


def test_tenant_message_is_helpful() -> None:
    with pytest.raises(ConfigError) as exc:
        make(tenant="Demo_1")
    assert str(exc.value) == (
        'tenant "Demo_1" is invalid: use 1-20 lowercase letters, digits or hyphens, '
        'starting with a letter (e.g. "demo-1")'
    )


def test_region_message_suggests_close_matches() -> None:
    with pytest.raises(ConfigError, match=r'did you mean.*"europe-west1"'):
        make(region="europe-wes1")


def test_region_message_offers_the_first_of_equally_close_regions() -> None:
    with pytest.raises(
        ConfigError, match=r'did you mean "europe-west1", "europe-west2", "europe-west3"\?'
    ):
        make(region="europe-west")


def test_env_value_is_never_shown() -> None:
    with pytest.raises(ConfigError) as exc:
        make(env={"TOKEN": 12345678})
    assert "12345678" not in str(exc.value)


def test_source_without_manage_py(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        make(source=tmp_path)
    assert str(exc.value) == (
        f'source "{tmp_path}" has no manage.py (nor src/manage.py): point --source at your '
        "Django project's directory"
    )


def test_source_src_layout(tmp_path: Path) -> None:
    """A src layout (manage.py in src/), as docs/container.md says and the container finds."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "manage.py").write_text("")
    assert make(source=tmp_path).source == tmp_path


BAD_SUB: list[tuple[str, Any, dict[str, Any]]] = [
    ("service.cpu", ServiceConfig, {"cpu": "0.5"}),
    ("service.cpu", ServiceConfig, {"cpu": "3"}),
    ("service.cpu", ServiceConfig, {"cpu": 1}),
    ("service.memory", ServiceConfig, {"memory": "lots"}),
    ("service.memory", ServiceConfig, {"memory": "512M"}),
    ("service.memory", ServiceConfig, {"memory": "256Mi"}),
    ("service.memory", ServiceConfig, {"memory": "64Gi"}),
    ("service.memory", ServiceConfig, {"memory": "8Gi"}),  # cpu 1 allows up to 4Gi
    ("service.memory", ServiceConfig, {"cpu": "4", "memory": "1Gi"}),
    ("service.min_instances", ServiceConfig, {"min_instances": -1}),
    ("service.min_instances", ServiceConfig, {"min_instances": 5, "max_instances": 4}),
    ("service.max_instances", ServiceConfig, {"max_instances": 0}),
    ("service.max_instances", ServiceConfig, {"max_instances": 1001}),
    ("service.max_instances", ServiceConfig, {"max_instances": "3"}),
    ("service.max_instances", ServiceConfig, {"max_instances": True}),
    ("service.timeout_seconds", ServiceConfig, {"timeout_seconds": 0}),
    ("service.timeout_seconds", ServiceConfig, {"timeout_seconds": 3601}),
    ("service.concurrency", ServiceConfig, {"concurrency": 0}),
    ("service.concurrency", ServiceConfig, {"concurrency": 1001}),
    ("service.ingress", ServiceConfig, {"ingress": "public"}),
    ("service.public", ServiceConfig, {"public": "yes"}),
    ("vpc.egress", VpcConfig, {"connector": "c", "egress": "everything"}),
    ("vpc.connector", VpcConfig, {"connector": "c", "network": "n", "subnetwork": "s"}),
    ("vpc", VpcConfig, {"network": "n"}),
    ("vpc", VpcConfig, {}),
    ("vpc.network", VpcConfig, {"network": "Bad Net", "subnetwork": "s"}),
    ("database.tier", DatabaseConfig, {"tier": "f1-micro"}),
    ("database.tier", DatabaseConfig, {"edition": "ENTERPRISE_PLUS"}),
    ("database.tier", DatabaseConfig, {"tier": "db-perf-optimized-N-2"}),
    ("database.version", DatabaseConfig, {"version": "POSTGRES_16"}),
    ("database.edition", DatabaseConfig, {"edition": "STANDARD"}),
    ("database.disk_size_gb", DatabaseConfig, {"disk_size_gb": 9}),
    ("database.disk_size_gb", DatabaseConfig, {"disk_size_gb": 65537}),
    ("database.extensions", DatabaseConfig, {"extensions": ("pg_trgm; drop",)}),
    ("database.extensions", DatabaseConfig, {"extensions": ("PostGIS",)}),
    ("database.extensions", DatabaseConfig, {"extensions": ("citext", "citext")}),
    ("database.extensions", DatabaseConfig, {"extensions": "citext"}),
    ("database.shared_instance", DatabaseConfig, {"shared_instance": "1pg"}),
    ("database.shared_instance", DatabaseConfig, {"shared_instance": "pg_shared"}),
    ("database.shared_instance", DatabaseConfig, {"shared_instance": "a" * 85}),
    ("database.backups", DatabaseConfig, {"backups": 1}),
    ("database.deletion_protection", DatabaseConfig, {"deletion_protection": "no"}),
    ("media.location", MediaConfig, {"location": "eu west"}),
    ("media.location", MediaConfig, {"location": "moon"}),
    ("media.location", MediaConfig, {"location": "europe-west99"}),
    ("media.location", MediaConfig, {"location": "NAM5"}),
    ("media.location", MediaConfig, {"location": "europe"}),  # Artifact Registry's, not Storage's
    ("media.location", MediaConfig, {"location": "europe-west1-b"}),
    ("media.location", MediaConfig, {"location": ""}),
    ("media.location", MediaConfig, {"location": 3}),
    ("database.tier", DatabaseConfig, {"tier": "db-n1-standard-2"}),  # MySQL only
    ("database.tier", DatabaseConfig, {"tier": "db-custom-3-7680"}),
    ("database.tier", DatabaseConfig, {"tier": "db-custom-98-393216"}),
    ("database.tier", DatabaseConfig, {"tier": "db-custom-1-3000"}),
    ("database.tier", DatabaseConfig, {"tier": "db-custom-1-6912"}),
    ("database.tier", DatabaseConfig, {"tier": "db-custom-2-7700"}),
    ("database.tier", DatabaseConfig, {"tier": "db-custom-2"}),
    ("database.tier", DatabaseConfig, {"tier": 2}),
    (
        "database.tier",
        DatabaseConfig,
        {"tier": "db-perf-optimized-N-3", "edition": "ENTERPRISE_PLUS"},
    ),
    ("vpc.connector", VpcConfig, {"connector": "projects/p/locations/europe-west1/connectors/c"}),
    ("vpc.connector", VpcConfig, {"connector": "locations/europe-west1/connectors/c"}),
    ("vpc.network", VpcConfig, {"network": "global/networks/n", "subnetwork": "s"}),
    ("vpc.subnetwork", VpcConfig, {"network": "n", "subnetwork": "projects/pp-123/subnetworks/s"}),
    ("vpc.connector", VpcConfig, {"connector": "a" * 64}),
    ("superuser.email", SuperuserConfig, {"email": "admin"}),
    ("superuser.username", SuperuserConfig, {"username": "bad name"}),
    ("probes.path", ProbeConfig, {"path": "health/"}),
    ("probes.startup_initial_delay", ProbeConfig, {"startup_initial_delay": -1}),
    ("probes.startup_initial_delay", ProbeConfig, {"startup_initial_delay": 241}),
    ("probes.startup_period", ProbeConfig, {"startup_period": 0}),
    ("probes.startup_timeout", ProbeConfig, {"startup_timeout": 11}),
    ("probes.startup_failure_threshold", ProbeConfig, {"startup_failure_threshold": 0}),
    ("probes.startup_failure_threshold", ProbeConfig, {"startup_failure_threshold": 25}),
    ("probes.liveness_period", ProbeConfig, {"liveness_period": 241}),
    ("probes.liveness_timeout", ProbeConfig, {"liveness_timeout": 0}),
    ("probes.liveness_timeout", ProbeConfig, {"liveness_period": 3, "liveness_timeout": 4}),
    ("probes.liveness_failure_threshold", ProbeConfig, {"liveness_failure_threshold": 0}),
    ("secret_env.secret", SecretRef, {"secret": "bad/name"}),
    ("secret_env.secret", SecretRef, {"secret": ""}),
    ("secret_env.version", SecretRef, {"secret": "ok", "version": "0"}),
    ("secret_env.version", SecretRef, {"secret": "ok", "version": "v1"}),
    ("secret_env.version", SecretRef, {"secret": "ok", "version": 3}),
    ("build.apt_packages", BuildConfig, {"apt_packages": ("LibGDAL",)}),
    ("build.apt_packages", BuildConfig, {"apt_packages": ("lib gdal",)}),
    ("build.apt_packages", BuildConfig, {"apt_packages": ("x",)}),
    ("build.apt_packages", BuildConfig, {"apt_packages": ("-rf",)}),
    ("build.apt_packages", BuildConfig, {"apt_packages": ("libfoo;rm",)}),
    ("build.apt_packages", BuildConfig, {"apt_packages": ("$(id)",)}),
    ("build.apt_packages", BuildConfig, {"apt_packages": ("libgdal-dev", "libgdal-dev")}),
    ("build.apt_packages", BuildConfig, {"apt_packages": "libgdal-dev"}),
    ("build.runtime_apt_packages", BuildConfig, {"runtime_apt_packages": ("libgdal32", 3)}),
]


@pytest.mark.parametrize(
    ("field", "cls", "kw"), BAD_SUB, ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(BAD_SUB)]
)
def test_bad_section_names_the_field(field: str, cls: Any, kw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as exc:
        cls(**kw)
    assert str(exc.value).startswith(field + " "), str(exc.value)


def test_project_settings_env_points_at_settings_module() -> None:
    with pytest.raises(ConfigError, match="set settings_module instead"):
        make(env={"DJANGO_PROJECT_SETTINGS": "mysite.settings"})


def test_settings_module_and_build_default_to_unset() -> None:
    c = make()
    assert c.settings_module is None
    assert c.build == BuildConfig() and c.build.apt_packages == ()
    assert c.build.runtime_apt_packages == ()


def test_fractional_cpu_explains_why() -> None:
    with pytest.raises(ConfigError, match="first-generation"):
        ServiceConfig("0.5")


def test_postgres_version_says_only_15() -> None:
    with pytest.raises(ConfigError, match='only "POSTGRES_15" is supported'):
        DatabaseConfig(version="POSTGRES_14")


def test_config_is_frozen_hashable_and_picklable() -> None:
    c = make(env={"A": "1"}, secret_env={"S": SecretRef("s")}, labels={"team": "x"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.region = "us-central1"  # type: ignore[misc]
    with pytest.raises(TypeError):
        c.env["B"] = "2"  # type: ignore[index]
    assert isinstance(c.env, FrozenDict) and isinstance(c.env, dict)
    assert hash(c) == hash(
        make(env={"A": "1"}, secret_env={"S": SecretRef("s")}, labels={"team": "x"})
    )
    assert pickle.loads(pickle.dumps(c)) == c
    assert dataclasses.replace(c, region="us-central1").names.region == "us-central1"
    assert json.loads(json.dumps(c.names.labels))["team"] == "x"


# --------------------------------------------------------------------------- names


def test_names_default() -> None:
    n = make().names
    assert n == Names.derive(tenant="demo", app="django", project=PROJECT, region="europe-west1")
    assert n.prefix == n.service == n.registry == "demo-django"
    assert (n.db_init_job, n.migrate_job) == ("demo-django-db-init", "demo-django-migrate")
    assert (n.sql_instance, n.sql_instance_shared) == ("demo-django-pg", False)
    assert n.database == n.db_user == "demo_django"
    assert n.bucket == f"{PROJECT}-demo-django-media"
    assert n.staging_bucket == f"{PROJECT}-djdeploy-sources"
    assert n.image_repo == f"europe-west1-docker.pkg.dev/{PROJECT}/demo-django/django"
    assert (n.runtime_sa_id, n.build_sa_id) == ("demo-django-run", "demo-django-build")
    assert n.runtime_sa_email == f"demo-django-run@{PROJECT}.iam.gserviceaccount.com"
    assert n.build_sa_email == f"demo-django-build@{PROJECT}.iam.gserviceaccount.com"
    assert n.secret_db_password == "demo-django-db-password"
    assert n.secret_key == "demo-django-secret-key"
    assert n.secret_superuser_password == "demo-django-superuser-password"
    assert n.connection_name == f"{PROJECT}:europe-west1:demo-django-pg"
    assert n.service_url("123456") == "https://demo-django-123456.europe-west1.run.app"
    assert n.labels == {
        "managed-by": "djdeploy",
        "djdeploy-tenant": "demo",
        "djdeploy-app": "django",
    }


def test_names_cached() -> None:
    c = make()
    assert c.names is c.names


def test_hyphenated_tenant_maps_to_underscored_database() -> None:
    n = make(tenant="acme-eu").names
    assert n.database == n.db_user == "acme_eu_django"


def test_shared_instance() -> None:
    n = make(database=DatabaseConfig(shared_instance="shared-pg")).names
    assert (n.sql_instance, n.sql_instance_shared) == ("shared-pg", True)
    assert n.connection_name == f"{PROJECT}:europe-west1:shared-pg"


def test_extra_labels_merge() -> None:
    n = make(labels={"team": "web"}).names
    assert n.labels["team"] == "web" and n.labels["managed-by"] == "djdeploy"


LONG = [
    ("a" * 20, "b" * 20, "p" * 30),
    ("a" * 20, "b" * 20, "q" * 30),
    ("a" * 19 + "x", "b" * 20, "p" * 30),
    ("a" * 20, "b" * 19 + "x", "p" * 30),
    ("tenant-with-hyphen1", "longappname", "project-id-with-hyphens-30xxx"),
    ("a", "b", "abcdef"),
]


@pytest.mark.parametrize(("tenant", "app", "project"), LONG)
def test_long_names_fit_their_limits(tenant: str, app: str, project: str) -> None:
    n = make(tenant=tenant, app=app, project=project).names
    n.validate()
    assert len(n.service) <= 49 and len(n.db_init_job) <= 49 and len(n.migrate_job) <= 49
    assert 3 <= len(n.bucket) <= 63 and n.bucket.endswith("-media")
    assert 3 <= len(n.staging_bucket) <= 63
    for sa in (n.runtime_sa_id, n.build_sa_id):
        assert 6 <= len(sa) <= 30 and sa[0].isalpha() and sa[-1] != "-" and "--" not in sa
    assert n.runtime_sa_id.endswith("-run") and n.build_sa_id.endswith("-build")
    assert len(n.database) <= 63 and len(n.sql_instance) <= 84
    # stable: derived again, the same
    assert n == make(tenant=tenant, app=app, project=project).names


def test_shortened_names_differ_for_different_inputs() -> None:
    names = [make(tenant=t, app=a, project=p).names for t, a, p in LONG[:4]]
    assert len({n.bucket for n in names}) == 4
    by_prefix = {n.prefix: n for n in names}
    assert len({n.runtime_sa_id for n in by_prefix.values()}) == len(by_prefix)
    assert len({n.build_sa_id for n in by_prefix.values()}) == len(by_prefix)
    # a known value pins stability across machines and Python versions
    n = make(tenant="a" * 20, app="b" * 20, project="p" * 30).names
    assert (
        n.runtime_sa_id
        == Names.derive(
            tenant="a" * 20, app="b" * 20, project="p" * 30, region="europe-west1"
        ).runtime_sa_id
    )
    assert len(n.runtime_sa_id.split("-")[-2]) == 6


def test_short_sa_ids_padded() -> None:
    from deployer.config.names import _sa_id

    assert _sa_id("a", "") == "a-sa-sa"
    assert len(_sa_id("ab", "-x")) >= 6


# --------------------------------------------------------------------------- loading


def load(
    cwd: Path,
    environ: dict[str, str] | None = None,
    flags: dict[str, Any] | None = None,
    tenant: str | None = "demo",
    emulator: bool = False,
) -> Config:
    env = {"CLOUDSDK_CONFIG": str(cwd / "no-gcloud")}
    env.update(environ or {})
    return load_config(tenant=tenant, cwd=cwd, environ=env, flags=flags or {}, emulator=emulator)


FULL_TOML = """
tenant = "acme"
project = "file-project"
region = "us-central1"
app = "shop"
source = "mysite"
settings_module = "shop.settings.production"

[service]
cpu = "2"
memory = "1Gi"
min_instances = 1
public = false

[vpc]
connector = "conn-1"
egress = "all-traffic"

[database]
tier = "db-custom-1-3840"
extensions = ["pg_trgm", "uuid-ossp"]
shared_instance = "shared-pg"

[build]
apt_packages = ["libgdal-dev", "libproj-dev"]
runtime_apt_packages = ["libgdal32"]

[media]
location = "EU"

[env]
SENTRY_ENVIRONMENT = "prod"

[secret_env]
SENTRY_DSN = "sentry-dsn"
STRIPE_KEY = "stripe:3"
OTHER = { secret = "other", version = 2 }

[superuser]
username = "root"
email = "ops@acme.test"

[probes]
path = "/healthz"

[labels]
team = "shop"
"""


def test_full_file(tmp_path: Path) -> None:
    (tmp_path / "mysite").mkdir()
    (tmp_path / "mysite" / "manage.py").write_text("")
    (tmp_path / "djdeploy.toml").write_text(FULL_TOML)
    c = load(tmp_path, tenant=None)
    assert (c.tenant, c.project, c.region, c.app) == ("acme", "file-project", "us-central1", "shop")
    assert c.source == (tmp_path / "mysite").resolve()
    assert c.service == ServiceConfig("2", memory="1Gi", min_instances=1, public=False)
    assert c.vpc == VpcConfig(connector="conn-1", egress="all-traffic")
    assert c.database.extensions == ("pg_trgm", "uuid-ossp")
    assert c.names.sql_instance == "shared-pg"
    assert c.media_location == "EU"
    assert c.settings_module == "shop.settings.production"
    assert c.build == BuildConfig(
        ("libgdal-dev", "libproj-dev"), runtime_apt_packages=("libgdal32",)
    )
    assert c.env == {"SENTRY_ENVIRONMENT": "prod"}
    assert c.secret_env == {
        "SENTRY_DSN": SecretRef("sentry-dsn"),
        "STRIPE_KEY": SecretRef("stripe", version="3"),
        "OTHER": SecretRef("other", version="2"),
    }
    assert c.superuser == SuperuserConfig("root", email="ops@acme.test")
    assert c.probes.path == "/healthz"
    assert c.labels == {"team": "shop"}


def test_defaults_without_file(tmp_path: Path) -> None:
    c = load(tmp_path, environ={"GOOGLE_CLOUD_PROJECT": PROJECT})
    assert c == Config("demo", project=PROJECT)
    assert c.vpc is None and c.source is None and c.media_location == "europe-west1"


def test_pyproject_tool_section(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.djdeploy]\nproject = "py-project"\n'
        '[tool.djdeploy.service]\nmemory = "1Gi"\n'
    )
    c = load(tmp_path)
    assert (c.project, c.service.memory) == ("py-project", "1Gi")


def test_djdeploy_toml_wins_over_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.djdeploy]\nproject = "py-project"\n')
    (tmp_path / "djdeploy.toml").write_text('project = "toml-project"\n')
    assert load(tmp_path).project == "toml-project"


def test_pyproject_without_section_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert load(tmp_path, environ={"GOOGLE_CLOUD_PROJECT": PROJECT}).project == PROJECT


def test_explicit_config_flag(tmp_path: Path) -> None:
    (tmp_path / "other.toml").write_text('project = "other-project"\n')
    assert load(tmp_path, flags={"config": "other.toml"}).project == "other-project"
    with pytest.raises(ConfigError, match="no such file"):
        load(tmp_path, flags={"config": "missing.toml"})


PRECEDENCE = [
    ({}, {}, "2Gi"),
    ({"DJDEPLOY_SERVICE_MEMORY": "4Gi"}, {}, "4Gi"),
    ({"DJDEPLOY_SERVICE_MEMORY": "4Gi"}, {"service.memory": "1Gi"}, "1Gi"),
    ({}, {"service.memory": "1Gi"}, "1Gi"),
    ({"DJDEPLOY_SERVICE_MEMORY": "4Gi"}, {"service.memory": None}, "4Gi"),
]


@pytest.mark.parametrize(("environ", "flags", "memory"), PRECEDENCE)
def test_precedence_file_env_flag(
    tmp_path: Path, environ: dict[str, str], flags: dict[str, Any], memory: str
) -> None:
    (tmp_path / "djdeploy.toml").write_text(
        f'project = "{PROJECT}"\nregion = "us-east1"\n[service]\nmemory = "2Gi"\n'
    )
    c = load(tmp_path, environ=environ, flags=flags)
    assert c.service.memory == memory
    assert c.region == "us-east1"


def test_env_and_flags_top_level(tmp_path: Path) -> None:
    (tmp_path / "djdeploy.toml").write_text(f'project = "{PROJECT}"\nregion = "us-east1"\n')
    assert load(tmp_path, environ={"DJDEPLOY_REGION": "us-west1"}).region == "us-west1"
    c = load(tmp_path, environ={"DJDEPLOY_REGION": "us-west1"}, flags={"region": "asia-east1"})
    assert c.region == "asia-east1"


def test_env_var_types(tmp_path: Path) -> None:
    c = load(
        tmp_path,
        environ={
            "DJDEPLOY_PROJECT": PROJECT,
            "DJDEPLOY_SERVICE_MAX_INSTANCES": "10",
            "DJDEPLOY_SERVICE_PUBLIC": "false",
            "DJDEPLOY_DATABASE_EXTENSIONS": "citext, pg_trgm",
            "DJDEPLOY_DATABASE_SHARED_INSTANCE": "shared-pg",
            "DJDEPLOY_MEDIA_LOCATION": "",
            "DJDEPLOY_EMULATOR": "1",  # belongs to the CLI: ignored here
        },
    )
    assert c.service.max_instances == 10 and c.service.public is False
    assert c.database.extensions == ("citext", "pg_trgm")
    assert c.database.shared_instance == "shared-pg"
    assert c.media.location is None


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("DJDEPLOY_SERVICE_MAX_INSTANCES", "ten", 'DJDEPLOY_SERVICE_MAX_INSTANCES "ten"'),
        ("DJDEPLOY_SERVICE_PUBLIC", "maybe", "must be true or false"),
        ("DJDEPLOY_SERVICE_MEMORY", "lots", "(from DJDEPLOY_SERVICE_MEMORY)"),
    ],
)
def test_bad_env_var(tmp_path: Path, var: str, value: str, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, environ={"DJDEPLOY_PROJECT": PROJECT, var: value})
    assert needle in str(exc.value)


def test_misspelt_variables_warn_only_near_a_table_field() -> None:
    environ = {
        "DJDEPLOY_SERVICE_MEMRY": "1Gi",  # a typo of a [service] field
        "DJDEPLOY_DATABASE_TEIR": "db-f1-micro",
        "DJDEPLOY_SERVICE_MEMORY": "1Gi",  # known
        "DJDEPLOY_VERBOSE": "1",  # no table
        "DJDEPLOY_BUILD_ID": "42",  # a CI's: close to no [build] field
        "DJDEPLOY_BUILD_NUMBER": "7",
        "DJDEPLOY_STATE_DIR": "/tmp/x",  # the CLI's own
        "SERVICE_MEMRY": "1Gi",  # not ours
    }
    assert misspelt_variables(environ) == [
        "DJDEPLOY_DATABASE_TEIR is not a djdeploy setting (did you mean "
        "DJDEPLOY_DATABASE_TIER?): ignored",
        "DJDEPLOY_SERVICE_MEMRY is not a djdeploy setting (did you mean "
        "DJDEPLOY_SERVICE_MEMORY?): ignored",
    ]


def test_a_misspelt_variable_is_still_ignored(tmp_path: Path) -> None:
    c = load(tmp_path, environ={"DJDEPLOY_PROJECT": PROJECT, "DJDEPLOY_SERVICE_MEMRY": "1Gi"})
    assert c.service.memory == ServiceConfig().memory


def test_settings_module_and_build_from_env_and_flags(tmp_path: Path) -> None:
    (tmp_path / "djdeploy.toml").write_text(
        f'project = "{PROJECT}"\nsettings_module = "file.settings"\n'
        '[build]\napt_packages = ["libfile-dev"]\n'
    )
    assert load(tmp_path).settings_module == "file.settings"
    c = load(
        tmp_path,
        environ={
            "DJDEPLOY_SETTINGS_MODULE": "env.settings",
            "DJDEPLOY_BUILD_APT_PACKAGES": "libgdal-dev, libproj-dev",
            "DJDEPLOY_BUILD_RUNTIME_APT_PACKAGES": "libgdal32",
        },
    )
    assert c.settings_module == "env.settings"
    assert c.build == BuildConfig(
        ("libgdal-dev", "libproj-dev"), runtime_apt_packages=("libgdal32",)
    )
    c = load(
        tmp_path,
        environ={"DJDEPLOY_SETTINGS_MODULE": "env.settings"},
        flags={"settings_module": "flag.settings", "build.apt_packages": "libflag-dev"},
    )
    assert (c.settings_module, c.build.apt_packages) == ("flag.settings", ("libflag-dev",))
    # an empty value unsets the optional key; an empty list means no extra packages
    c = load(
        tmp_path,
        environ={"DJDEPLOY_SETTINGS_MODULE": "", "DJDEPLOY_BUILD_APT_PACKAGES": ""},
    )
    assert c.settings_module is None and c.build.apt_packages == ()


@pytest.mark.parametrize(
    ("environ", "needle"),
    [
        ({"DJDEPLOY_SETTINGS_MODULE": "my-site.settings"}, "(from DJDEPLOY_SETTINGS_MODULE)"),
        (
            {"DJDEPLOY_BUILD_APT_PACKAGES": "libgdal-dev,Bad"},
            'build.apt_packages "Bad" is invalid',
        ),
    ],
)
def test_bad_settings_module_or_build(tmp_path: Path, environ: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, environ={"DJDEPLOY_PROJECT": PROJECT, **environ})
    assert needle in str(exc.value)


def test_flag_types_and_maps(tmp_path: Path) -> None:
    (tmp_path / "djdeploy.toml").write_text(
        f'project = "{PROJECT}"\n[env]\nA = "file"\nB = "file"\n[labels]\nteam = "x"\n'
    )
    c = load(
        tmp_path,
        flags={
            "service.min_instances": "2",
            "service.max_instances": 5,
            "env": ["B=flag", "C=x=y"],
            "secret_env": {"DSN": "dsn:7"},
            "labels": {"owner": "me"},
        },
    )
    assert (c.service.min_instances, c.service.max_instances) == (2, 5)
    assert c.env == {"A": "file", "B": "flag", "C": "x=y"}
    assert c.secret_env == {"DSN": SecretRef("dsn", version="7")}
    assert c.labels == {"team": "x", "owner": "me"}


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('projet = "x"\n', 'unknown key "projet"'),
        ('projet = "x"\n', 'did you mean "project"'),
        ('[service]\nmemroy = "1Gi"\n', 'did you mean "service.memory"'),
        ('[servce]\nmemory = "1Gi"\n', 'did you mean "service"'),
        ('service = "big"\n', "must be a table"),
        ("project = \n", "not valid TOML"),
        ('[service]\nmax_instances = "3"\n', "service.max_instances"),
        ("[secret_env]\nX = 3\n", "secret_env.X"),
        ('[secret_env]\nX = { name = "a" }\n', "secret_env.X"),
        ('[secret_env]\nX = "a:b"\n', "secret_env.X.version"),
    ],
)
def test_bad_file(tmp_path: Path, toml: str, needle: str) -> None:
    (tmp_path / "djdeploy.toml").write_text(toml)
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, environ={"DJDEPLOY_PROJECT": PROJECT})
    assert needle in str(exc.value)


def test_error_names_its_file(tmp_path: Path) -> None:
    (tmp_path / "djdeploy.toml").write_text(f'project = "{PROJECT}"\n[service]\nmemory = "x"\n')
    with pytest.raises(ConfigError, match=r"\(from service.memory in .*djdeploy.toml\)"):
        load(tmp_path)


def test_unknown_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r'unknown flag "service\.memroy"'):
        load(tmp_path, flags={"service.memroy": "1Gi"}, environ={"DJDEPLOY_PROJECT": PROJECT})


@pytest.mark.parametrize(
    ("value", "ref"),
    [
        ("name", SecretRef("name")),
        ("name:latest", SecretRef("name")),
        ("name:12", SecretRef("name", version="12")),
        ({"secret": "name"}, SecretRef("name")),
        ({"secret": "name", "version": 3}, SecretRef("name", version="3")),
        ({"secret": "name", "version": "3"}, SecretRef("name", version="3")),
        (SecretRef("n"), SecretRef("n")),
    ],
)
def test_secret_ref_parse(value: Any, ref: SecretRef) -> None:
    assert SecretRef.parse(value) == ref


@pytest.mark.parametrize(
    "value", ["", "name:", "name:0", "na/me", 5, {"version": "1"}, {"secret": "a", "extra": 1}]
)
def test_secret_ref_parse_bad(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"^secret_env\.X"):
        SecretRef.parse(value, where="secret_env.X")


def test_source_relative_to_file_dir(tmp_path: Path, django_dir: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "djdeploy.toml").write_text(f'project = "{PROJECT}"\nsource = "../mysite"\n')
    c = load_config(tenant="demo", cwd=tmp_path, environ={}, flags={"config": "conf/djdeploy.toml"})
    assert c.source == django_dir.resolve()


def test_source_flag_relative_to_cwd(tmp_path: Path, django_dir: Path) -> None:
    c = load(tmp_path, environ={"DJDEPLOY_PROJECT": PROJECT}, flags={"source": "mysite"})
    assert c.source == django_dir.resolve()
    c = load(tmp_path, environ={"DJDEPLOY_PROJECT": PROJECT, "DJDEPLOY_SOURCE": "mysite"})
    assert c.source == django_dir.resolve()


def test_source_without_manage_py_via_flag(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(
        ConfigError, match=r"has no manage\.py \(nor src/manage\.py\): point --source at"
    ):
        load(tmp_path, environ={"DJDEPLOY_PROJECT": PROJECT}, flags={"source": "x"})


def test_tenant_sources(tmp_path: Path) -> None:
    env = {"DJDEPLOY_PROJECT": PROJECT}
    (tmp_path / "djdeploy.toml").write_text('tenant = "filet"\n')
    assert load(tmp_path, environ=env, tenant=None).tenant == "filet"
    assert load(tmp_path, environ={**env, "DJDEPLOY_TENANT": "envt"}, tenant=None).tenant == "envt"
    assert load(tmp_path, environ={**env, "DJDEPLOY_TENANT": "envt"}, tenant="flagt").tenant == (
        "flagt"
    )


def test_tenant_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no tenant: pass --tenant"):
        load(tmp_path, environ={"DJDEPLOY_PROJECT": PROJECT}, tenant=None)


# --------------------------------------------------------------------------- project


def gcloud_dir(root: Path, *, active: str | None, configs: dict[str, str | None]) -> Path:
    d = root / "gcloud"
    (d / "configurations").mkdir(parents=True)
    if active is not None:
        (d / "active_config").write_text(active + "\n")
    for name, project in configs.items():
        body = "[core]\naccount = me@example.com\n"
        if project:
            body += f"project = {project}\n"
        (d / "configurations" / f"config_{name}").write_text(body)
    return d


def resolve(
    cwd: Path, environ: dict[str, str], flags: dict[str, Any] | None = None, emulator: bool = False
) -> str:
    return load_project_and_region(cwd=cwd, environ=environ, flags=flags or {}, emulator=emulator)[
        0
    ]


def test_project_resolution_order(tmp_path: Path) -> None:
    gc = gcloud_dir(
        tmp_path, active="work", configs={"default": "default-proj", "work": "gcloud-proj"}
    )
    env = {"CLOUDSDK_CONFIG": str(gc)}
    assert resolve(tmp_path, env) == "gcloud-proj"
    env["GOOGLE_CLOUD_PROJECT"] = "gcp-env-proj"
    assert resolve(tmp_path, env) == "gcp-env-proj"
    (tmp_path / "djdeploy.toml").write_text('project = "file-proj"\n')
    assert resolve(tmp_path, env) == "file-proj"
    env["DJDEPLOY_PROJECT"] = "djd-env-proj"
    assert resolve(tmp_path, env) == "djd-env-proj"
    assert resolve(tmp_path, env, {"project": "flag-proj"}) == "flag-proj"
    assert (
        load_config(
            tenant="demo", cwd=tmp_path, environ=env, flags={"project": "flag-proj"}
        ).project
        == "flag-proj"
    )


def test_gcloud_active_config_default_and_env_override(tmp_path: Path) -> None:
    gc = gcloud_dir(
        tmp_path, active=None, configs={"default": "default-proj", "other": "other-proj"}
    )
    assert resolve(tmp_path, {"CLOUDSDK_CONFIG": str(gc)}) == "default-proj"
    assert (
        resolve(tmp_path, {"CLOUDSDK_CONFIG": str(gc), "CLOUDSDK_ACTIVE_CONFIG_NAME": "other"})
        == "other-proj"
    )
    assert (
        resolve(tmp_path, {"CLOUDSDK_CONFIG": str(gc), "CLOUDSDK_CORE_PROJECT": "core-proj"})
        == "core-proj"
    )


def test_gcloud_home_dir(tmp_path: Path) -> None:
    home = tmp_path / "home"
    gcloud_dir(home / ".config", active="default", configs={"default": "home-proj"})
    assert resolve(tmp_path, {"HOME": str(home)}) == "home-proj"


def test_no_project(tmp_path: Path) -> None:
    gc = gcloud_dir(tmp_path, active="default", configs={"default": None})
    with pytest.raises(ConfigError, match="no Google Cloud project: pass --project"):
        resolve(tmp_path, {"CLOUDSDK_CONFIG": str(gc)})
    assert resolve(tmp_path, {"CLOUDSDK_CONFIG": str(gc)}, emulator=True) == "djdeploy-demo"
    assert load(tmp_path, emulator=True).project == "djdeploy-demo"


def test_emulator_still_honours_a_given_project(tmp_path: Path) -> None:
    assert load(tmp_path, environ={"GOOGLE_CLOUD_PROJECT": PROJECT}, emulator=True).project == (
        PROJECT
    )


# --------------------------------------------------------------------------- imports


def test_importing_config_imports_no_google() -> None:
    code = "import deployer.config, sys; print([m for m in sys.modules if m.startswith('google')])"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.strip() == "[]"


def test_the_emulator_loads_nothing_of_the_deployer_but_regions_and_clock() -> None:
    """The emulator-imports contract (.importlinter), also at run time: `import deployer.regions`
    runs deployer/__init__.py, which must load nothing else."""
    code = (
        "import importlib, pkgutil, sys, deployer.emulator as e\n"
        "for m in pkgutil.iter_modules(e.__path__):\n"
        "    importlib.import_module('deployer.emulator.' + m.name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('deployer')"
        " and not m.startswith('deployer.emulator')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.strip() == "['deployer', 'deployer.clock', 'deployer.regions']"


@pytest.mark.parametrize(
    ("labels", "ours"),
    [
        ({"managed-by": "djdeploy", "djdeploy-tenant": "demo", "djdeploy-app": "django"}, True),
        ({"managed-by": "djdeploy", "djdeploy-tenant": "demo"}, True),  # app label removed
        ({"managed-by": "djdeploy"}, True),  # tenant label removed by hand: drift
        ({"djdeploy-tenant": "demo", "djdeploy-app": "django"}, True),  # managed-by removed
        ({"managed-by": "djdeploy", "djdeploy-tenant": "other"}, False),
        ({"managed-by": "djdeploy", "djdeploy-tenant": "demo", "djdeploy-app": "blog"}, False),
        ({"team": "data"}, False),
        ({}, False),
        (None, False),
    ],
)
def test_names_own_only_our_resources(labels: dict[str, str] | None, ours: bool) -> None:
    names = Config("demo", project="acme-prod").names
    assert names.owns(labels) is ours


@pytest.mark.parametrize(
    "var", ["DJDEPLOY_VERBOSE", "DJDEPLOY_PUBLIC", "DJDEPLOY_SERVICE_MEMRY", "DJDEPLOY_BUILD_ID"]
)
def test_an_undocumented_djdeploy_variable_is_ignored(var: str, tmp_path: Path) -> None:
    """Only the documented variables are ours: another tool's (or a CI's) is not refused."""
    config = load_config(tenant="demo", cwd=tmp_path, environ={var: "x"}, flags={}, emulator=True)
    assert config == load_config(tenant="demo", cwd=tmp_path, environ={}, flags={}, emulator=True)


def test_cli_variables_are_not_configuration(tmp_path: Path) -> None:
    environ = {"DJDEPLOY_EMULATOR": "1", "DJDEPLOY_ENDPOINT": "http://127.0.0.1:1"}
    assert load_config(tenant="demo", cwd=tmp_path, environ=environ, flags={}, emulator=True)


def test_a_far_region_gets_examples_not_a_wrong_guess() -> None:
    with pytest.raises(ConfigError) as info:
        Config("demo", project="acme-prod", region="mars-1")
    assert "did you mean" not in str(info.value)
    assert "europe-west1" in str(info.value)


# ------------------------------------------------------------------ places, before any API call

MESSAGES: list[tuple[str, Any, str]] = [
    (
        "media.location",
        lambda: MediaConfig("moon"),
        'media.location "moon" is invalid: not a Cloud Storage location: e.g. a region '
        '("europe-west1"), a dual-region ("EUR4", "NAM4") or a multi-region ("EU", "US", "ASIA")',
    ),
    (
        "media.location",
        lambda: MediaConfig("NAM5"),
        'media.location "NAM5" is invalid: not a Cloud Storage location: did you mean "NAM4"?',
    ),
    (
        "region",
        lambda: make(region="Europe-West1"),
        'region "Europe-West1" is invalid: not a Cloud Run region: did you mean "europe-west1"',
    ),
    (
        "database.tier",
        lambda: DatabaseConfig("db-custom-2-16384"),
        'database.tier "db-custom-2-16384" is invalid: with 2 vCPUs Cloud SQL allows 3840 to '
        '13312 MiB in steps of 256 (e.g. "db-custom-2-3840")',
    ),
    (
        "vpc.connector",
        lambda: make(vpc=VpcConfig(connector="projects/host-proj/locations/us-east1/connectors/c")),
        'vpc.connector "projects/host-proj/locations/us-east1/connectors/c" is invalid: it is in '
        "us-east1, the service in europe-west1: Cloud Run reaches a VPC only through a connector "
        "in its own region",
    ),
]


@pytest.mark.parametrize(("field", "build", "message"), MESSAGES, ids=[m[0] for m in MESSAGES])
def test_a_bad_place_is_one_line_with_the_fix(field: str, build: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert str(info.value).startswith(message), str(info.value)


BAD_INPUT: list[tuple[str, dict[str, str], dict[str, str], list[str], str]] = [
    # (case, files in the working directory, environment, command line, start of the one line)
    (
        "location-in-file",
        {"djdeploy.toml": '[media]\nlocation = "moon"\n'},
        {},
        ["up", "--tenant", "demo"],
        'media.location "moon" is invalid',
    ),
    (
        "location-in-env",
        {},
        {"DJDEPLOY_MEDIA_LOCATION": "moon"},
        ["plan", "--tenant", "demo"],
        'media.location "moon" is invalid',
    ),
    (
        "region-flag",
        {},
        {},
        ["up", "--tenant", "demo", "--region", "europe-wst1"],
        'region "europe-wst1" is invalid',
    ),
    (
        "region-env-status-all-tenants",
        {},
        {"DJDEPLOY_REGION": "moon"},
        ["status"],
        'region "moon" is invalid',
    ),
    (
        "project-flag-status-all-tenants",
        {},
        {},
        ["status", "--project", "My Project"],
        'project "My Project" is invalid',
    ),
    (
        "tier-in-pyproject",
        {"pyproject.toml": '[tool.djdeploy.database]\ntier = "db-n1-standard-2"\n'},
        {},
        ["destroy", "--tenant", "demo", "--yes"],
        'database.tier "db-n1-standard-2" is invalid',
    ),
    (
        "subnetwork-elsewhere",
        {
            "djdeploy.toml": '[vpc]\nnetwork = "n"\n'
            'subnetwork = "projects/host-proj/regions/us-east1/subnetworks/s"\n'
        },
        {},
        ["up", "--tenant", "demo"],
        'vpc.subnetwork "projects/host-proj/regions/us-east1/subnetworks/s" is invalid',
    ),
]


def _cli(emulator: EmulatorHandle, args: list[str], env: dict[str, str]) -> tuple[int, str]:
    from typer.testing import CliRunner

    from deployer.cli import app

    result = CliRunner().invoke(
        app,
        ["--endpoint", emulator.url, "--time-scale", "0.001", *args],
        env={"GOOGLE_CLOUD_PROJECT": PROJECT, **env},
    )
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("files", "env", "args", "message"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT]
)
def test_bad_input_through_the_cli_makes_no_api_call(
    files: dict[str, str],
    env: dict[str, str],
    args: list[str],
    message: str,
    emulator: EmulatorHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`media.location = "moon"` once cost 16 API calls before failing: now none."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    code, output = _cli(emulator, args, env)
    lines = [line for line in output.splitlines() if line.strip()]
    assert code == 1, output
    assert len(lines) == 1 and lines[0].startswith("error: " + message), output
    assert emulator.control.transcript() == []


def test_the_transcript_sees_the_calls_of_a_good_location(
    emulator: EmulatorHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above could fail: the same command with a real location calls the API."""
    monkeypatch.chdir(tmp_path)
    code, output = _cli(emulator, ["plan", "--tenant", "demo"], {"DJDEPLOY_MEDIA_LOCATION": "EU"})
    assert code == 2, output  # changes pending on an empty project
    assert emulator.control.transcript() != []


# --------------------------------------------------------------------------- domains


def test_domains_from_file_env_and_python(tmp_path: Path) -> None:
    (tmp_path / "djdeploy.toml").write_text('domains = ["www.example.com", "example.com"]\n')
    env = {"DJDEPLOY_PROJECT": PROJECT}
    assert load(tmp_path, environ=env).domains == ("www.example.com", "example.com")
    env["DJDEPLOY_DOMAINS"] = "shop.example.com, example.org"
    assert load(tmp_path, environ=env).domains == ("shop.example.com", "example.org")
    assert make(domains=["a.example.com"]).domains == ("a.example.com",)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (["https://example.com"], "no scheme, port, path"),
        (["example.com:8443"], "no scheme, port, path"),
        (["*.example.com"], "no scheme, port, path"),
        (["Example.com"], "lowercase host name"),
        (["localhost"], "lowercase host name"),
        (["x-12345-ew.a.run.app"], "run.app URLs are always allowed"),
        (["a.example.com", "a.example.com"], "listed twice"),
        ("example.com", "use a list of host names"),
    ],
)
def test_bad_domains(value: Any, why: str) -> None:
    with pytest.raises(ConfigError, match=r"^domains .* is invalid: ") as exc:
        make(domains=value)
    assert why in str(exc.value)


@pytest.mark.parametrize("name", ["ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS"])
def test_hosts_env_points_at_domains(name: str) -> None:
    with pytest.raises(ConfigError, match=r"list your own host names in domains = \["):
        make(env={name: "www.example.com"})
