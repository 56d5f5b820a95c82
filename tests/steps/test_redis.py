"""The redis step's diff (pure): create when missing, refuse someone else's instance or a tier
or network change, wait while it changes, patch its size, AUTH and labels, noop when ready.
The redis-url step's: create the secret, a new version when it no longer holds the URL."""

from __future__ import annotations

from typing import Any

from deployer.config import Config
from deployer.steps.base import Action, Broken, NotOurs
from deployer.steps.redis import RedisInstance
from deployer.steps.redis_url import RedisUrl

STEP = RedisInstance(
    Config("demo", project="my-proj-123", worker={"command": "x", "broker": "redis"})
)


def instance(**over: Any) -> dict[str, Any]:
    return {
        **STEP.desired(),
        "state": "READY",
        "host": "10.0.0.3",
        "port": 6379,
        "name": "projects/my-proj-123/locations/europe-west1/instances/demo-django-redis",
        **over,
    }


def test_missing_is_created() -> None:
    assert STEP.diff(None).action is Action.CREATE


def test_ready_and_matching_is_a_noop_with_its_url() -> None:
    change = STEP.diff(instance())
    assert change.action is Action.NOOP
    assert change.info["broker_url"] == "redis://10.0.0.3:6379/0"
    assert "ready at redis://10.0.0.3:6379/0" in change.reason


def test_someone_elses_instance_is_refused() -> None:
    change = STEP.diff(instance(labels={"owner": "them"}))
    assert change.action is Action.REFUSE and isinstance(change.failure, NotOurs)


def test_it_waits_while_it_changes() -> None:
    for state in ("CREATING", "UPDATING", "DELETING", "MAINTENANCE"):
        assert STEP.diff(instance(state=state)).action is Action.WAIT, state


def test_a_tier_or_network_change_is_refused_with_the_fix() -> None:
    for over in ({"tier": "STANDARD_HA"}, {"authorizedNetwork": "projects/p/global/networks/n"}):
        change = STEP.diff(instance(**over))
        assert change.action is Action.REFUSE and isinstance(change.failure, Broken)
        assert "cannot change on an existing instance" in str(change.failure)


def test_size_and_labels_are_patched() -> None:
    change = STEP.diff(instance(memorySizeGb=2, labels={"managed-by": "djdeploy"}))
    assert change.action is Action.UPDATE
    assert {f.path.split(".", 1)[0] for f in change.fields} == {"memorySizeGb", "labels"}


URL_STEP = RedisUrl(STEP.config)
OURS = dict(STEP.config.names.labels)


def url_secret(**over: Any) -> dict[str, Any]:
    return {"labels": OURS, "latest": "2", "current": True, "auth": True, **over}


def test_the_url_secret_is_created_then_kept_while_it_holds_the_url() -> None:
    created = URL_STEP.diff(None)
    assert created.action is Action.CREATE
    assert [f.path for f in created.fields] == ["demo-django-redis-url"]
    kept = URL_STEP.diff(url_secret())
    assert kept.action is Action.NOOP and kept.info == {
        "secret": "demo-django-redis-url",
        "version": "2",
        "auth": "on",
    }


def test_a_new_url_is_a_new_version_and_no_address_a_wait() -> None:
    changed = URL_STEP.diff(url_secret(current=False))
    assert changed.action is Action.UPDATE
    [field] = changed.fields
    assert (field.old, field.new) == ("version 2", "a new version")
    empty = URL_STEP.diff(url_secret(latest=None, current=False))
    assert empty.action is Action.UPDATE and empty.fields[0].old is None
    assert URL_STEP.diff(url_secret(current=None)).action is Action.WAIT


def test_someone_elses_url_secret_is_refused() -> None:
    change = URL_STEP.diff(url_secret(labels={"owner": "them"}))
    assert change.action is Action.REFUSE and isinstance(change.failure, NotOurs)


def test_auth_is_desired_and_a_change_of_it_is_patched() -> None:
    assert STEP.desired()["authEnabled"] is True
    change = STEP.diff(instance(authEnabled=False))
    assert change.action is Action.UPDATE
    assert [f.path for f in change.fields] == ["authEnabled"]
