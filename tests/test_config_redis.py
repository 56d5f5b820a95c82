"""[worker] broker = "redis": the rules (one line each, before any call), the Direct VPC egress
it brings to the service, the jobs and the worker, the instance's name (AUTH on by default),
the URL secret as CELERY_BROKER_URL and REDIS_URL, and what it adds to the step graph and the
APIs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deployer import ci
from deployer.config import Config, load_config
from deployer.errors import ConfigError
from deployer.steps import build_steps
from deployer.steps import container_env as ce
from deployer.steps.apis import required_apis
from deployer.steps.iam import IamRuntime
from deployer.steps.redis import RedisInstance

PROJECT = "my-proj-123"
SECRET = "demo-django-redis-url"


def config(vpc: dict[str, Any] | None = None, **worker: Any) -> Config:
    return Config(
        "demo",
        project=PROJECT,
        vpc=vpc,
        worker={"command": "celery -A proj worker", "broker": "redis", **worker},
    )


def test_defaults_and_the_instance() -> None:
    c = config()
    assert c.worker is not None and c.worker.redis
    assert (c.worker.redis_tier, c.worker.redis_memory_gb) == ("basic", 1)
    assert c.names.redis_instance == "demo-django-redis"
    long = Config("a" * 20, project=PROJECT, app="b" * 20, worker={"command": "x"})
    assert len(long.names.redis_instance) <= 40 and long.names.redis_instance.endswith("-redis")
    assert RedisInstance(c).desired() == {
        "tier": "BASIC",
        "memorySizeGb": 1,
        "authorizedNetwork": f"projects/{PROJECT}/global/networks/default",
        "connectMode": "DIRECT_PEERING",
        "authEnabled": True,
        "labels": dict(c.names.labels),
    }
    assert RedisInstance(config(redis_auth=False)).desired()["authEnabled"] is False
    assert RedisInstance(config(redis_tier="standard", redis_memory_gb=5)).desired()["tier"] == (
        "STANDARD_HA"
    )


@pytest.mark.parametrize(
    ("worker", "start"),
    [
        ({"broker": "rabbitmq"}, 'worker.broker "rabbitmq" is invalid: use "redis"'),
        ({"broker_secret": "b"}, 'worker.broker_secret "b" is invalid: worker.broker = "redis"'),
        ({"redis_tier": "BASIC"}, 'worker.redis_tier "BASIC" is invalid: must be one of'),
        ({"redis_memory_gb": 0}, "worker.redis_memory_gb 0 is invalid: must be between 1 and 300"),
        ({"redis_memory_gb": 301}, "worker.redis_memory_gb 301 is invalid"),
        (
            {"broker": None, "redis_memory_gb": 2},
            "worker.redis_memory_gb 2 is invalid: it configures",
        ),
        ({"broker": None, "redis_tier": "standard"}, 'worker.redis_tier "standard" is invalid'),
        ({"redis_auth": "yes"}, 'worker.redis_auth "yes" is invalid'),
        (
            {"broker": None, "redis_auth": False},
            "worker.redis_auth False is invalid: it configures",
        ),
    ],
)
def test_bad_values_say_what_and_how(worker: dict[str, Any], start: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(**worker)
    assert str(info.value).startswith(start) and "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["CELERY_BROKER_URL", "REDIS_URL"])
@pytest.mark.parametrize("table", ["env", "secret_env"])
def test_the_urls_are_set_once(table: str, name: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config(
            "demo",
            project=PROJECT,
            worker={"command": "x", "broker": "redis"},
            **{table: {name: "redis://:hunter2@x/0" if table == "env" else "s"}},
        )
    assert str(info.value).startswith(f"{table}.{name} is invalid: worker.broker sets {name}")
    assert "hunter2" not in str(info.value)


def test_a_connector_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        config(vpc={"connector": "my-conn"})
    assert str(info.value).startswith('vpc.connector "my-conn" is invalid: worker.broker = ')
    assert "vpc.network + vpc.subnetwork" in str(info.value)


def test_direct_vpc_egress_for_every_container() -> None:
    default = {
        "egress": "PRIVATE_RANGES_ONLY",
        "networkInterfaces": [{"network": "default", "subnetwork": "default"}],
    }
    assert ce.vpc_access(config()) == default
    assert ce.vpc_access(Config("demo", project=PROJECT)) is None
    own = config(vpc={"network": "prod", "subnetwork": "prod-ew1", "egress": "all-traffic"})
    assert ce.vpc_access(own) == {
        "egress": "ALL_TRAFFIC",
        "networkInterfaces": [{"network": "prod", "subnetwork": "prod-ew1"}],
    }
    assert own.redis_network == f"projects/{PROJECT}/global/networks/prod"
    shared = config(vpc={"network": "projects/host-proj/global/networks/shared", "subnetwork": "s"})
    assert shared.redis_network == "projects/host-proj/global/networks/shared"


def test_the_url_secret_is_in_every_containers_env() -> None:
    """Never a plain value: a reference to the URL secret's newest enabled version; before it
    has one, plan shows a placeholder version and apply refuses (missing_redis)."""
    c = config()
    assert SECRET in ce.secrets_to_resolve(c)
    inputs = ce.Inputs(project_number="123", versions=dict.fromkeys(ce.secrets_to_resolve(c), "3"))
    ref = {"secretKeyRef": {"secret": SECRET, "version": "3"}}
    for target in ce.TARGETS:
        env = {e["name"]: e for e in ce.build_env(c, target, inputs)}
        for name in ("CELERY_BROKER_URL", "REDIS_URL"):
            assert env[name] == {"name": name, "valueSource": ref}
    waiting = ce.Inputs(project_number="123", versions={**inputs.versions, SECRET: None})
    assert ce.missing_redis(c, waiting) == [
        f"CELERY_BROKER_URL (secret {SECRET} not written yet)",
        f"REDIS_URL (secret {SECRET} not written yet)",
    ]
    assert ce.missing_redis(c, inputs) == [] and ce.missing_secrets(c, "service", waiting) == []
    planned = {e["name"]: e for e in ce.build_env(c, ce.SERVICE, waiting)}
    version = planned["REDIS_URL"]["valueSource"]["secretKeyRef"]["version"]
    assert version == f"<{SECRET}: once the redis instance is ready>"


def test_the_graph_and_the_apis() -> None:
    plain = build_steps(Config("demo", project=PROJECT, worker={"command": "x"}))
    assert "redis" not in [s.name for s in plain]
    assert "redis.googleapis.com" not in required_apis(Config("demo", project=PROJECT))
    steps = {s.name: s for s in build_steps(config())}
    assert steps["redis"].needs == ("apis",) and steps["redis-url"].needs == ("redis",)
    assert "redis-url" in steps["db-init"].needs and "redis-url" in steps["iam-runtime"].needs
    assert "redis-url" in steps["migrate"].needs  # created beside db-init, its env reads it
    runtime = steps["iam-runtime"]
    assert isinstance(runtime, IamRuntime) and SECRET in runtime.secret_ids()
    assert "redis-retired" in [s.name for s in plain] and "redis-retired" not in steps
    assert {"redis.googleapis.com", "compute.googleapis.com"} <= set(required_apis(config()))


def test_a_ci_deployer_gets_memorystores_role() -> None:
    assert ci.REDIS_ROLE in ci.config_roles(config())
    assert ci.REDIS_ROLE not in ci.config_roles(Config("demo", project=PROJECT))


def test_loaded_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "djdeploy.toml").write_text(
        '[worker]\ncommand = "celery -A proj worker"\nbroker = "redis"\nredis_memory_gb = 2\n'
    )
    environ = {"DJDEPLOY_PROJECT": PROJECT, "DJDEPLOY_WORKER_REDIS_TIER": "standard"}
    c = load_config(tenant="demo", cwd=tmp_path, environ=environ, flags={})
    assert c.worker is not None
    assert (c.worker.broker, c.worker.redis_tier, c.worker.redis_memory_gb) == (
        "redis",
        "standard",
        2,
    )
