"""The per-tenant lease against the emulator (real storage client), with fake clocks: who it
says holds it, waiting, takeover of an expired lease, renewal, loss, release, and the
generation preconditions that make two racing runs end with one holder."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from deployer.clock import VirtualClock
from deployer.config import Config
from deployer.emulator.testing import EmulatorHandle, storage_client
from deployer.engine import Options
from deployer.gcp.clients import ClientFactory
from deployer.gcp.cloud import Cloud
from deployer.gcp.lease import LeaseStore
from deployer.lease import (
    MIN_LEASE_SECONDS,
    Guarded,
    Holder,
    Lease,
    LeaseLost,
    LeaseTiming,
    Locked,
    Notice,
    NoticeKind,
    Superseded,
    lease_name,
    store_for,
)
from deployer.steps.base import Action, Change

PROJECT = "lease-proj"
CONFIG = Config(tenant="demo", project=PROJECT)
TIMING = LeaseTiming(seconds=60.0, renew=15.0, poll=5.0)
NAME = lease_name("demo")


class FakeClock:
    """Time moves only when someone sleeps; `on_sleep` lets a test act at that moment."""

    def __init__(self, on_sleep: Callable[[], None] | None = None) -> None:
        self.now = 0.0
        self.on_sleep = on_sleep

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep()


class Wall:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 21, 30, 5, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def cloud(emulator: EmulatorHandle) -> Cloud:
    storage_client(emulator.url, PROJECT).create_bucket(CONFIG.names.staging_bucket)
    factory = ClientFactory(endpoint=emulator.url, project=PROJECT)
    return Cloud(PROJECT, CONFIG.region, factory, clock=VirtualClock())


def make(
    cloud: Cloud,
    *,
    command: str = "up",
    tenant: str = "demo",
    clock: FakeClock | None = None,
    wait: bool = True,
    notices: list[Notice] | None = None,
    wall: Wall | None = None,
) -> Lease:
    lease = Lease(
        store_for(cloud, CONFIG),
        tenant,
        command,
        clock=clock or FakeClock(),
        timing=TIMING,
        wait=wait,
        wall=wall or Wall(),
    )
    if notices is not None:
        lease.on_notice = notices.append
    return lease


def stored_holder(cloud: Cloud, name: str = NAME) -> Holder | None:
    stored = store_for(cloud, CONFIG).read(name)
    return Holder.from_fields(stored.fields, tenant="demo") if stored else None


def test_acquire_records_who_since_and_until_and_release_deletes_it(cloud: Cloud) -> None:
    import os
    import socket

    lease = make(cloud)
    lease.acquire()
    holder = stored_holder(cloud)
    assert holder is not None
    assert (holder.id, holder.command, holder.tenant) == (lease.id, "up", "demo")
    assert (holder.pid, holder.host) == (os.getpid(), socket.gethostname())
    assert (holder.since, holder.until) == ("2026-12-01T21:30:05Z", "2026-12-01T21:31:05Z")
    assert holder.seconds == 60.0
    lease.release()
    assert stored_holder(cloud) is None


def test_a_second_run_told_not_to_wait_says_who_holds_it_and_writes_nothing(
    cloud: Cloud, emulator: EmulatorHandle
) -> None:
    make(cloud, command="destroy --delete-data").acquire()
    emulator.control.clear_transcript()
    with pytest.raises(Locked) as caught:
        make(cloud, wait=False).acquire()
    message = str(caught.value)
    assert "tenant demo is locked by `djdeploy destroy --delete-data`" in message
    assert "since 2026-12-01 21:30:05 UTC" in message
    assert "`djdeploy unlock --tenant demo`" in message
    assert [e["method"] for e in emulator.control.transcript() if e["method"] != "GET"] == []


def test_different_tenants_never_wait_for_each_other(cloud: Cloud) -> None:
    make(cloud, tenant="demo", wait=False).acquire()
    make(cloud, tenant="other", wait=False).acquire()  # would raise Locked if they shared one
    assert stored_holder(cloud, lease_name("other")) is not None


def test_an_expired_lease_is_taken_over_within_twice_its_duration(cloud: Cloud) -> None:
    killed = make(cloud)
    killed.acquire()  # and never renewed again: its process was killed
    clock = FakeClock()
    notices: list[Notice] = []
    waiter = make(cloud, clock=clock, notices=notices)
    waiter.acquire()
    assert TIMING.seconds <= clock.now < 2 * TIMING.seconds
    assert [n.kind for n in notices if n.kind is not NoticeKind.WAITING] == [NoticeKind.TOOK_OVER]
    assert notices[-1].holder is not None and notices[-1].holder.id == killed.id
    holder = stored_holder(cloud)
    assert holder is not None and holder.id == waiter.id
    # the old holder, should it come back, finds it lost and never deletes the new lease
    killed.renew()
    with pytest.raises(LeaseLost, match="taken over by `djdeploy up`"):
        killed.check()
    killed.release()
    holder = stored_holder(cloud)
    assert holder is not None and holder.id == waiter.id


def test_a_renewed_lease_is_never_taken_over(cloud: Cloud) -> None:
    holder = make(cloud)
    holder.acquire()
    clock = FakeClock()

    def heartbeat() -> None:  # the holder renews while the waiter sleeps, then finishes
        if clock.now < 2.5 * TIMING.seconds:
            holder.renew()
        else:
            holder.release()

    clock.on_sleep = heartbeat
    notices: list[Notice] = []
    make(cloud, clock=clock, notices=notices).acquire()
    assert clock.now >= 2.5 * TIMING.seconds
    assert notices[-1].kind is NoticeKind.ACQUIRED  # after the release, not a takeover
    assert all(n.kind is NoticeKind.WAITING for n in notices[:-1])


def test_of_two_writers_over_one_expired_generation_exactly_one_wins(cloud: Cloud) -> None:
    make(cloud).acquire()
    store = store_for(cloud, CONFIG)
    stored = store.read(NAME)
    assert stored is not None
    first = store.write(NAME, {"id": "b"}, if_generation=stored.generation)
    second = store.write(NAME, {"id": "c"}, if_generation=stored.generation)
    assert first is not None and second is None
    assert store.write(NAME, {"id": "d"}, if_generation=0) is None  # create: only when absent


def test_renewal_rewrites_under_our_generation_and_keeps_since(cloud: Cloud) -> None:
    wall = Wall()
    lease = make(cloud, wall=wall)
    lease.acquire()
    first = lease.generation
    wall.now += timedelta(seconds=15)
    lease.renew()
    assert lease.generation > first
    holder = stored_holder(cloud)
    assert holder is not None
    assert (holder.since, holder.until) == ("2026-12-01T21:30:05Z", "2026-12-01T21:31:20Z")
    lease.check()  # still ours


def test_a_removed_lease_stops_its_holder(cloud: Cloud) -> None:
    lease = make(cloud)
    lease.acquire()
    assert store_for(cloud, CONFIG).delete(NAME, if_generation=lease.generation)  # unlock
    lease.renew()
    with pytest.raises(LeaseLost, match=r"lost the lease on tenant demo: it was removed"):
        lease.check()


def test_a_holder_that_could_not_renew_for_three_quarters_of_its_lease_stops(
    cloud: Cloud, emulator: EmulatorHandle
) -> None:
    clock = FakeClock()
    lease = make(cloud, clock=clock)
    lease.acquire()
    emulator.control.add_fault(method="POST", path="^/upload/storage/", code=403)  # every renewal
    clock.now += TIMING.seconds - TIMING.renew - 1
    lease.check()  # tried to renew, failed: not silent for long enough yet
    clock.now += 2
    with pytest.raises(LeaseLost, match="could not renew the lease on tenant demo"):
        lease.check()


def test_a_due_renewal_is_made_by_the_step_that_checks(cloud: Cloud) -> None:
    clock = FakeClock()
    lease = make(cloud, clock=clock)
    lease.acquire()
    first = lease.generation
    clock.now += TIMING.seconds  # the heartbeat thread never ran
    lease.check()
    assert lease.generation > first and not lease.lost


def test_a_retried_create_that_had_landed_counts_as_ours(
    cloud: Cloud, emulator: EmulatorHandle
) -> None:
    # the create is applied, its answer lost: the retry gets 412, the lease id says it is ours
    emulator.control.add_fault(method="POST", path="/upload/", action="drop", times=1)
    lease = make(cloud, wait=False)
    lease.acquire()
    holder = stored_holder(cloud)
    assert holder is not None and holder.id == lease.id
    statuses = [e["status"] for e in emulator.control.transcript() if e["method"] == "POST"]
    assert statuses[-1] == 412


@pytest.mark.parametrize(
    ("first", "then", "proceeds"),
    [
        ("destroy --delete-data", "up", False),
        ("up", "destroy", False),
        ("up", "up", True),  # a newer source may be waiting
        ("destroy", "destroy --delete-data", True),
        ("secrets rotate", "up", True),  # a rotation deploys as up does
        ("up", "secrets rotate", True),
        ("destroy", "secrets rotate", False),
        ("secrets rotate", "destroy", False),
    ],
)
def test_a_run_that_waited_never_undoes_what_the_opposite_command_finished(
    cloud: Cloud, first: str, then: str, proceeds: bool
) -> None:
    holder = make(cloud, command=first)
    holder.acquire()
    waiter = make(cloud, command=then, clock=FakeClock(on_sleep=holder.release))
    if proceeds:
        waiter.acquire()
        assert stored_holder(cloud) is not None
        return
    with pytest.raises(Superseded, match=rf"while this `djdeploy {then}` waited"):
        waiter.acquire()
    assert stored_holder(cloud) is None  # it took nothing


def test_an_expired_opposite_holder_is_taken_over_to_recover(cloud: Cloud) -> None:
    make(cloud, command="destroy --delete-data").acquire()  # then killed
    waiter = make(cloud, command="up", clock=FakeClock())
    waiter.acquire()
    holder = stored_holder(cloud)
    assert holder is not None and holder.id == waiter.id


def test_a_guarded_step_stops_acting_once_the_lease_is_lost(cloud: Cloud) -> None:
    class Step:
        name, needs, data = "s", (), False
        calls = 0

        def observe(self, cloud: Cloud) -> None:
            self.calls += 1

        def diff(self, observed: object) -> Change:
            return Change("s", "r", Action.CREATE, "absent")

        def apply(self, cloud: Cloud, change: Change) -> None:
            self.calls += 1

        def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
            self.calls += 1
            return Change("s", "r", Action.DELETE, "deleted")

    lease = make(cloud)
    lease.acquire()
    step = Step()
    guarded = Guarded(step, lease)
    guarded.observe(cloud)
    store_for(cloud, CONFIG).delete(NAME, if_generation=lease.generation)
    lease.renew()
    change = guarded.diff(None)
    for act in (
        lambda: guarded.observe(cloud),
        lambda: guarded.apply(cloud, change),
        lambda: guarded.delete(cloud, delete_data=False),
    ):
        with pytest.raises(LeaseLost):
            act()
    assert step.calls == 1


def test_lease_timing_follows_the_time_scale_but_never_below_its_floor() -> None:
    assert LeaseTiming.scaled(Options()) == LeaseTiming(seconds=60.0, renew=15.0, poll=5.0)
    fast = LeaseTiming.scaled(Options.scaled(0.001))
    assert fast.seconds == MIN_LEASE_SECONDS
    assert fast.renew == MIN_LEASE_SECONDS / 4
    assert fast.poll < 1.0


def test_a_hand_written_lease_object_still_reads() -> None:
    holder = Holder.from_fields({"seconds": "soon", "pid": "x"}, tenant="demo")
    assert (holder.tenant, holder.seconds, holder.pid) == ("demo", 60.0, 0)
    assert holder.describe() == "`djdeploy unknown command`"


def test_the_account_is_the_credentials_email_when_they_name_one(cloud: Cloud) -> None:
    from types import SimpleNamespace

    assert LeaseStore(cloud, "b").account() == ""  # anonymous against the emulator
    named = SimpleNamespace(service_account_email="ci@p.iam.gserviceaccount.com")
    cloud.clients.__dict__["credentials"] = named  # the cached property, as ADC would fill it
    assert LeaseStore(cloud, "b").account() == "ci@p.iam.gserviceaccount.com"
