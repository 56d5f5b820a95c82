"""The [monitoring] table: its rules, the cross-field rules, loading, and what it adds to the
step graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deployer.config import Config, MonitoringConfig, ServiceConfig, load_config
from deployer.errors import ConfigError
from deployer.steps import build_steps
from deployer.steps.apis import MONITORING_API, Apis


def make(**kw: Any) -> Config:
    return Config("demo", project="my-proj-123", **kw)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"enabled": "yes"}, "monitoring.enabled"),
        ({"enabled": True, "period": 120}, "monitoring.period 120 is invalid: Cloud Monitoring"),
        ({"enabled": True, "period": True}, "monitoring.period True is invalid"),
        ({"enabled": True, "alert_email": "ops"}, 'monitoring.alert_email "ops" is invalid'),
        ({"enabled": True, "alert_email": "a b@x.io"}, "monitoring.alert_email"),
        (
            {"alert_email": "ops@example.com"},
            'monitoring.alert_email "ops@example.com" is invalid: monitoring is off: set '
            "monitoring.enabled = true",
        ),
    ],
)
def test_bad_values_name_the_field_and_the_fix(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        MonitoringConfig(**kw)
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize(
    ("service", "message"),
    [
        (ServiceConfig(public=False), "needs service.public = true"),
        (ServiceConfig(ingress="internal"), 'set service.ingress = "all"'),
    ],
)
def test_monitoring_needs_a_service_the_internet_can_call(
    service: ServiceConfig, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        make(service=service, monitoring=MonitoringConfig(True))
    make(service=service)  # fine with monitoring off


def test_off_by_default_adds_only_the_retiring_steps_and_no_api() -> None:
    config = make()
    assert config.monitoring == MonitoringConfig(enabled=False, alert_email=None, period=300)
    steps = build_steps(config)
    names = [s.name for s in steps]
    # the 16 of a deployment, the manage job, the absent features' retiring steps, the rotation
    assert len(steps) == 23
    assert names[-5:] == [
        "worker-retired",
        "redis-retired",
        "monitoring-retired",
        "cron-retired",
        "rotation",
    ]
    apis = steps[0]
    assert isinstance(apis, Apis) and MONITORING_API not in apis.services


def test_on_adds_three_steps_and_the_api() -> None:
    steps = build_steps(make(monitoring=MonitoringConfig(True)))
    names = [s.name for s in steps]
    assert names[-5:-1] == ["alert-channel", "uptime-check", "alert-policy", "cron-retired"]
    assert "monitoring-retired" not in names
    apis = steps[0]
    assert isinstance(apis, Apis) and MONITORING_API in apis.services


def test_loaded_from_the_file_and_the_environment(tmp_path: Path) -> None:
    (tmp_path / "djdeploy.toml").write_text(
        '[monitoring]\nenabled = true\nalert_email = "ops@example.com"\n'
    )
    config = load_config(
        tenant="demo",
        cwd=tmp_path,
        environ={"DJDEPLOY_PROJECT": "my-proj-123", "DJDEPLOY_MONITORING_PERIOD": "60"},
        flags={},
    )
    assert config.monitoring == MonitoringConfig(True, alert_email="ops@example.com", period=60)


def test_a_typo_in_the_table_is_named(tmp_path: Path) -> None:
    (tmp_path / "djdeploy.toml").write_text("[monitoring]\nalert_emial = 'a@b.io'\n")
    with pytest.raises(ConfigError, match=r'did you mean "monitoring\.alert_email"'):
        load_config(tenant="demo", cwd=tmp_path, environ={"DJDEPLOY_PROJECT": "p-12345"}, flags={})
