"""The [[cron]] tables: schedule, time zone, name and command rules (one line each, before any
call), loading from a file, names, and what they add to the step graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deployer.config import Config, CronEntry, load_config
from deployer.config.rules import cron_problem
from deployer.errors import ConfigError

ENV = {"DJDEPLOY_PROJECT": "my-proj-123"}


def entry(**kw: Any) -> CronEntry:
    return CronEntry(**{"name": "nightly", "schedule": "0 3 * * *", "command": ["x"], **kw})


@pytest.mark.parametrize(
    "schedule",
    [
        "0 3 * * *",
        "*/15 * * * *",
        "0 9-17/2 * * 1-5",
        "30 4 1,15 * *",
        "0 0 1 JAN-MAR *",
        "0 12 * * sun,sat",
        "0 0 * * 7",
        "5/10 * * * *",
    ],
)
def test_unix_cron_schedules_cloud_scheduler_accepts(schedule: str) -> None:
    assert cron_problem(schedule) is None


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("0 3 * *", "a schedule has 5 fields"),
        ("0 3 * * * *", "not 6"),
        ("every day", "not 2"),
        ("60 3 * * *", 'the minute field "60"'),
        ("0 24 * * *", 'the hour field "24"'),
        ("0 3 0 * *", 'the day of month field "0"'),
        ("0 3 * 13 *", 'the month field "13"'),
        ("0 3 * * 8", 'the day of week field "8"'),
        ("0 3 * FOO *", 'the month field "FOO"'),
        ("5-1 3 * * *", 'the minute field "5-1"'),
        ("*/0 3 * * *", 'the minute field "*/0"'),
    ],
)
def test_bad_schedules_say_what_and_how(schedule: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        entry(schedule=schedule)
    text = str(info.value)
    assert text.startswith(f'cron.nightly.schedule "{schedule}" is invalid: ')
    assert message in text and "\n" not in text


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (
            {"time_zone": "Mars/Olympus"},
            'cron.nightly.time_zone "Mars/Olympus" is invalid: use an IANA',
        ),
        ({"time_zone": "CEST"}, "cron.nightly.time_zone"),
        ({"name": "Nightly"}, 'cron.name "Nightly" is invalid'),
        ({"name": "a" * 21}, "cron.name"),
        ({"command": []}, "cron.nightly.command [] is invalid"),
        ({"command": ["shell"]}, '"shell" cannot run on a schedule'),
        ({"command": ["dbshell"]}, '"dbshell" cannot run on a schedule'),
        ({"command": ["createsuperuser"]}, "add --noinput"),
        ({"command": ["manage.py", "clearsessions"]}, 'without "manage.py"'),
        ({"command": 3}, "cron.nightly.command"),
    ],
)
def test_bad_entries_name_the_field_and_the_fix(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        entry(**kw)
    assert message in str(info.value), str(info.value)


def test_commands_as_a_list_or_a_string() -> None:
    assert entry(command="send_report --days 1").command == ("send_report", "--days", "1")
    assert entry(command=["createsuperuser", "--noinput"]).command[0] == "createsuperuser"
    assert entry().time_zone == "Etc/UTC"


def test_two_entries_with_one_name_are_refused() -> None:
    with pytest.raises(ConfigError, match="two \\[\\[cron\\]\\] entries have this name"):
        Config("demo", project="my-proj-123", cron=(entry(), entry(schedule="0 4 * * *")))


def test_names_fit_cloud_run_and_service_accounts() -> None:
    config = Config("a" * 20, project="my-proj-123", app="b" * 20, cron=(entry(name="c" * 20),))
    job = config.names.cron_job("c" * 20)
    assert len(job) <= 49 and job != config.names.cron_job("c" * 19)
    short = Config("demo", project="my-proj-123", cron=(entry(),)).names
    assert short.cron_job("nightly") == "demo-django-cron-nightly"
    assert short.scheduler_sa_email == "demo-django-sched@my-proj-123.iam.gserviceaccount.com"


def test_loaded_from_the_file(tmp_path: Path) -> None:
    (tmp_path / "djdeploy.toml").write_text(
        '[[cron]]\nname = "nightly"\nschedule = "0 3 * * *"\ncommand = ["clearsessions"]\n'
        '[[cron]]\nname = "report"\nschedule = "0 8 * * mon"\ntime_zone = "Europe/Paris"\n'
        'command = "send_report --days 7"\n'
    )
    config = load_config(tenant="demo", cwd=tmp_path, environ=ENV, flags={})
    assert [e.name for e in config.cron] == ["nightly", "report"]
    assert config.cron[1].command == ("send_report", "--days", "7")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[[cron]]\nname = "n"\nschedule = "0 3 * * *"\ncomand = ["x"]\n',
            'unknown key "cron.comand"',
        ),
        ('[[cron]]\nname = "n"\nschedule = "0 3 * * *"\n', "it needs command"),
        ('[cron]\nname = "n"\n', "must be an array of tables"),
        (
            '[[cron]]\nname = "n"\nschedule = "0 25 * * *"\ncommand = ["x"]\n',
            'cron.n.schedule "0 25 * * *" is invalid',
        ),
    ],
)
def test_file_errors_are_one_line_naming_where(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "djdeploy.toml").write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(tenant="demo", cwd=tmp_path, environ=ENV, flags={})
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)
    assert "djdeploy.toml" in str(info.value)
