"""The [worker] table: command, size, instances and broker secret rules (one line each, before
any call), loading from a file, the derived name, the broker URL as a secret env var, and what it
adds to the step graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deployer.config import Config, SecretRef, WorkerConfig, load_config
from deployer.errors import ConfigError
from deployer.steps import build_steps
from deployer.steps import container_env as ce

ENV = {"DJDEPLOY_PROJECT": "my-proj-123"}


def config(**worker: Any) -> Config:
    return Config(
        "demo", project="my-proj-123", worker={"command": "celery -A proj worker", **worker}
    )


def test_defaults_and_a_string_command() -> None:
    w = config().worker
    assert w == WorkerConfig(("celery", "-A", "proj", "worker"))
    assert (w.cpu, w.memory, w.instances, w.broker_secret) == ("1", "512Mi", 1, None)
    assert config(command=["celery", "-A", "proj", "worker"]).worker == w
    assert Config("demo", project="my-proj-123").worker is None


@pytest.mark.parametrize(
    ("worker", "start"),
    [
        ({"command": ""}, "worker.command () is invalid: give the command"),
        ({"command": ["celery", ""]}, "worker.command"),
        ({"cpu": "3"}, 'worker.cpu "3" is invalid: use one of'),
        ({"memory": "256Mi"}, 'worker.memory "256Mi" is invalid: must be between 512Mi'),
        ({"memory": "lots"}, 'worker.memory "lots" is invalid: use a size'),
        ({"cpu": "1", "memory": "8Gi"}, 'worker.memory "8Gi" is invalid: with cpu "1"'),
        ({"instances": -1}, "worker.instances -1 is invalid: must be between 0 and 100"),
        ({"instances": "2"}, 'worker.instances "2" is invalid: must be a whole number'),
        ({"broker_secret": "a b"}, 'worker.broker_secret "a b" is invalid: a Secret Manager'),
    ],
)
def test_bad_values_say_what_and_how(worker: dict[str, Any], start: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(**worker)
    assert str(info.value).startswith(start) and "\n" not in str(info.value)


def test_the_broker_secret_is_the_apps_celery_broker_url() -> None:
    c = config(broker_secret="broker-url")
    assert c.app_secret_env == {"CELERY_BROKER_URL": SecretRef("broker-url")}
    assert ce.secret_refs(c, ce.SERVICE)["CELERY_BROKER_URL"] == ("broker-url", "latest")
    assert ce.secret_refs(c, ce.WORKER)["CELERY_BROKER_URL"] == ("broker-url", "latest")
    assert "CELERY_BROKER_URL" not in ce.secret_refs(config(), ce.WORKER)


@pytest.mark.parametrize("table", ["env", "secret_env"])
def test_the_broker_url_is_set_once(table: str) -> None:
    value = "redis://:hunter2@10.0.0.3/0" if table == "env" else "other"
    with pytest.raises(ConfigError) as info:
        Config(
            "demo",
            project="my-proj-123",
            worker={"command": "x", "broker_secret": "broker"},
            **{table: {"CELERY_BROKER_URL": value}},
        )
    text = str(info.value)
    assert text.startswith(f"{table}.CELERY_BROKER_URL is invalid: worker.broker_secret sets")
    assert "hunter2" not in text


def test_loaded_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "djdeploy.toml").write_text(
        '[worker]\ncommand = "celery -A proj worker -l info"\nmemory = "1Gi"\ninstances = 2\n'
        'broker_secret = "broker"\n'
    )
    c = load_config(tenant="demo", cwd=tmp_path, environ=ENV, flags={})
    assert c.worker == WorkerConfig(
        ("celery", "-A", "proj", "worker", "-l", "info"),
        memory="1Gi",
        instances=2,
        broker_secret="broker",
    )
    assert c.names.worker_pool == "demo-django-worker"


def test_a_command_from_the_environment_is_split_like_a_shell(tmp_path: Path) -> None:
    """As the file's string form: an argument may hold a comma (a queue list)."""
    environ = {**ENV, "DJDEPLOY_WORKER_COMMAND": "celery -A proj worker -Q 'high,low'"}
    c = load_config(tenant="demo", cwd=tmp_path, environ=environ, flags={})
    assert c.worker is not None
    assert c.worker.command == ("celery", "-A", "proj", "worker", "-Q", "high,low")


def test_a_worker_without_command_in_a_file(tmp_path: Path) -> None:
    (tmp_path / "djdeploy.toml").write_text('[worker]\nmemory = "1Gi"\n')
    with pytest.raises(ConfigError, match="worker is invalid: it needs command"):
        load_config(tenant="demo", cwd=tmp_path, environ=ENV, flags={})
    (tmp_path / "djdeploy.toml").write_text('[worker]\ncomand = "x"\n')
    with pytest.raises(ConfigError, match=r'did you mean "worker\.command"'):
        load_config(tenant="demo", cwd=tmp_path, environ=ENV, flags={})


def test_the_worker_step_only_when_configured() -> None:
    assert "worker" not in [s.name for s in build_steps(Config("demo", project="my-proj-123"))]
    steps = {s.name: s for s in build_steps(config())}
    assert steps["worker"].needs == ("migrate",)
    assert "worker" in steps["rotation"].needs
