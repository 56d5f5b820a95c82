"""One `up` or `destroy` at a time per tenant: a lease held in the cloud itself.

The lease is the object `djdeploy-leases/<tenant>` in the project's staging bucket, so it
protects across machines and CI runners. Its custom metadata says who holds it (lease id,
account, local user, host, pid, command), since when, until when, and for how long it lasts
unrenewed. Every write names the generation it replaces (gcp/lease.py):

- acquire: create with `ifGenerationMatch=0`; of racing creators exactly one succeeds;
- renew (a heartbeat thread, every quarter lease): rewrite with `ifGenerationMatch=<ours>`;
- release (end of the command, also on Ctrl-C, SIGTERM and any error): delete with
  `ifGenerationMatch=<ours>`, so only our own lease is ever deleted;
- take over: a waiter that sees one generation unchanged for the holder's lease duration
  (measured on its own monotonic clock: no two machines' wall clocks are compared) rewrites
  it with `ifGenerationMatch=<that generation>`; of two waiters exactly one succeeds.

A holder stops before anyone may take over: when a renewal finds the lease gone or someone
else's, or when it has not renewed for three quarters of the lease, every guarded step fails
at its next call with one clear line (`LeaseLost`). See docs/concurrency.md.
"""

from __future__ import annotations

import contextlib
import enum
import getpass
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from deployer.clock import Clock
from deployer.engine import Options, deleted_before, run_needs
from deployer.errors import DeployError
from deployer.gcp.lease import LeaseStore, StoredLease

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud
    from deployer.steps.base import Change, Step

PREFIX = "djdeploy-leases/"
#: what the lease itself needs (the Storage API, the staging bucket): shared by the project's
#: tenants and idempotent, so `up` converges them before it takes the lease, unlocked
BOOTSTRAP_STEPS = ("apis", "sources-bucket")
#: real seconds: a heartbeat must survive a loaded machine, whatever the emulator's speed
MIN_LEASE_SECONDS = 10.0


class Locked(DeployError):
    """Another run holds the tenant's lease and we were told not to wait (--no-wait)."""

    def __init__(self, holder: Holder) -> None:
        super().__init__(
            f"tenant {holder.tenant} is locked by {holder.describe()}: run again once it "
            f"is done, or `djdeploy unlock --tenant {holder.tenant}` if it is stuck"
        )
        self.holder = holder


class Superseded(DeployError):
    """While we waited, the run holding the lease did the opposite (up vs destroy) and
    finished: we do nothing, so the tenant stays as that run left it."""

    def __init__(self, holder: Holder, *, command: str) -> None:
        super().__init__(
            f"while this `djdeploy {command}` waited, {holder.describe()} ran on tenant "
            f"{holder.tenant} and finished: nothing done, so the tenant stays as that run left "
            f"it; run `djdeploy {command}` again to do it anyway"
        )
        self.holder = holder


class LeaseLost(DeployError):
    """The lease was taken over or removed while we held it: we stopped acting."""


@dataclass(frozen=True)
class LeaseTiming:
    """How long a lease lasts unrenewed, how often its holder renews it, how often a waiter
    reads it. Against Google: 60 s, 15 s, 5 s; an emulator's time scale shrinks them (through
    the engine's Options), never the lease below MIN_LEASE_SECONDS."""

    seconds: float = 60.0
    renew: float = 15.0
    poll: float = 5.0

    @classmethod
    def scaled(cls, options: Options) -> LeaseTiming:
        seconds = max(MIN_LEASE_SECONDS, 4 * options.poll_max)
        return cls(seconds=seconds, renew=seconds / 4, poll=max(0.1, options.poll_max / 3))


@dataclass(frozen=True)
class Holder:
    """Who holds a lease; `since`/`until` are the holder's wall-clock times (for people: the
    expiry decision never compares wall clocks)."""

    id: str
    tenant: str
    command: str
    account: str = ""
    user: str = ""
    host: str = ""
    pid: int = 0
    since: str = ""
    until: str = ""
    seconds: float = LeaseTiming.seconds

    def fields(self) -> dict[str, str]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "command": self.command,
            "account": self.account,
            "user": self.user,
            "host": self.host,
            "pid": str(self.pid),
            "since": self.since,
            "until": self.until,
            "seconds": f"{self.seconds:g}",
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str, str], *, tenant: str) -> Holder:
        """Tolerant: an object written by hand (or an older djdeploy) still reads."""
        try:
            seconds = float(fields.get("seconds", ""))
        except ValueError:
            seconds = LeaseTiming.seconds
        pid = fields.get("pid", "")
        return cls(
            id=fields.get("id", ""),
            tenant=fields.get("tenant") or tenant,
            command=fields.get("command", "") or "unknown command",
            account=fields.get("account", ""),
            user=fields.get("user", ""),
            host=fields.get("host", ""),
            pid=int(pid) if pid.isdigit() else 0,
            since=fields.get("since", ""),
            until=fields.get("until", ""),
            seconds=seconds if seconds > 0 else LeaseTiming.seconds,
        )

    @property
    def verb(self) -> str:
        return verb(self.command)

    def describe(self) -> str:
        """`djdeploy up` by ci@p.iam.gserviceaccount.com (runner@host-7, pid 4242) since ..."""
        where = "@".join(p for p in (self.user, self.host) if p)
        if self.pid:
            where = f"{where}, pid {self.pid}" if where else f"pid {self.pid}"
        who = " by " + self.account if self.account else ""
        text = f"`djdeploy {self.command}`{who}"
        if where:
            text += f" ({where})"
        return text + (f" since {_show(self.since)}" if self.since else "")


#: commands that deploy as `up` does (a rotation runs up): an up behind one is no opposite
DEPLOYS = ("secrets rotate",)


def verb(command: str) -> str:
    """The command without its options: "up" or "destroy" ("up" for one of DEPLOYS)."""
    if command.startswith(DEPLOYS):
        return "up"
    return command.split(" ", 1)[0]


#: the commands that change what is deployed: one of them that finished while another waited
#: makes the waiter stop (up vs destroy, rollback). `manage` runs a command on whatever is
#: deployed: it neither stops nor is stopped by another command
DEPLOYING = frozenset({"up", "destroy", "rollback"})


def supersedes(done: str, waiting: str) -> bool:
    """Whether the finished command ``done`` makes the one that waited for it, ``waiting``,
    stop without acting (both verbs)."""
    return done != waiting and {done, waiting} <= DEPLOYING


def _show(stamp: str) -> str:
    return stamp.replace("T", " ").removesuffix("Z") + " UTC" if stamp else ""


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> datetime:
    return datetime.now(UTC)


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return ""


class NoticeKind(enum.StrEnum):
    WAITING = "waiting"  # another run holds the lease; we wait for it
    ACQUIRED = "acquired"  # we hold it (after waiting, or at once)
    TOOK_OVER = "took-over"  # its holder stopped renewing it: we took it over
    RELEASE_FAILED = "release-failed"  # it stays until it expires


@dataclass(frozen=True)
class Notice:
    kind: NoticeKind
    tenant: str
    holder: Holder | None = None  # the other run (WAITING, TOOK_OVER)
    waited: float = 0.0  # seconds since we started to wait
    message: str = ""


OnNotice = Callable[[Notice], None]


def _ignore(_: Notice) -> None:
    pass


def lease_name(tenant: str) -> str:
    return PREFIX + tenant


def store_for(cloud: Cloud, config: Config) -> LeaseStore:
    return LeaseStore(cloud, config.names.staging_bucket)


def current_holder(cloud: Cloud, config: Config) -> Holder | None:
    """Who holds the tenant's lease now (plan and status show it; they take none)."""
    stored = store_for(cloud, config).read(lease_name(config.tenant))
    return Holder.from_fields(stored.fields, tenant=config.tenant) if stored else None


@dataclass
class Lease:
    """The lease on one tenant for one command. `acquire()` waits (or raises Locked),
    `check()` raises LeaseLost once it is not ours, `renew()` is one heartbeat, `release()`
    deletes it; `held()` does all of it around a block, with a heartbeat thread."""

    store: LeaseStore
    tenant: str
    command: str
    clock: Clock
    timing: LeaseTiming
    wait: bool = True
    on_notice: OnNotice = _ignore
    wall: Callable[[], datetime] = _now
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    generation: int = 0  # of our lease object; 0 while we hold none
    since: str = ""
    _renewed_at: float = 0.0  # clock.monotonic() before the last write that took effect
    _lost: str = ""
    _released: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return lease_name(self.tenant)

    # -- acquire ---------------------------------------------------------------------------

    def acquire(self) -> None:
        """Take the lease: at once when nobody holds it; after its holder releases it (or
        stops renewing it for its lease duration) when we may wait; else raise Locked.

        A holder that releases it after doing the opposite of our command (up vs destroy)
        raises Superseded: a run that waited never undoes what the run before it finished
        (an up behind up does run: it may deploy a newer source). A holder that stopped
        renewing (killed) is taken over whatever it did: finishing is the recovery."""
        start = self.clock.monotonic()
        seen: StoredLease | None = None  # the lease as we last read it
        seen_at = start  # when we first read that generation
        holder: Holder | None = None  # who held it then
        while True:
            current = self.store.read(self.name)
            if current is None:
                if holder is not None and supersedes(holder.verb, verb(self.command)):
                    raise Superseded(holder, command=self.command)
                if self._write(0):
                    return self._acquired(NoticeKind.ACQUIRED, None, start)
                continue  # another run created it first: read who
            if seen is None or seen.generation != current.generation:
                seen, seen_at = current, self.clock.monotonic()
            holder = Holder.from_fields(current.fields, tenant=self.tenant)
            unchanged = self.clock.monotonic() - seen_at
            if unchanged >= holder.seconds:
                if self._write(current.generation):
                    return self._acquired(NoticeKind.TOOK_OVER, holder, start)
                continue  # renewed at the last moment, or another waiter took it
            if not self.wait:
                raise Locked(holder)
            waited = self.clock.monotonic() - start
            self.on_notice(Notice(NoticeKind.WAITING, self.tenant, holder, waited))
            self.clock.sleep(min(self.timing.poll, holder.seconds - unchanged))

    def _acquired(self, kind: NoticeKind, holder: Holder | None, start: float) -> None:
        waited = self.clock.monotonic() - start
        self.on_notice(Notice(kind, self.tenant, holder, waited))

    def _write(self, if_generation: int) -> bool:
        """Write our lease over `if_generation` (0: none); True when it is ours now. A 412
        may answer a retried write that had already landed: the lease id tells."""
        now = self.wall()
        since = self.since or _stamp(now)  # kept from the first write that took effect
        holder = Holder(
            id=self.id,
            tenant=self.tenant,
            command=self.command,
            account=self.store.account(),
            user=_local_user(),
            host=socket.gethostname(),
            pid=os.getpid(),
            since=since,
            until=_stamp(now + timedelta(seconds=self.timing.seconds)),
            seconds=self.timing.seconds,
        )
        sent = self.clock.monotonic()
        stored = self.store.write(self.name, holder.fields(), if_generation=if_generation)
        if stored is None:
            stored = self.store.read(self.name)
            if stored is None or stored.fields.get("id") != self.id:
                return False
        self.generation, self._renewed_at, self.since = stored.generation, sent, since
        return True

    # -- while held ------------------------------------------------------------------------

    def check(self) -> None:
        """Raise LeaseLost once the lease is not ours any more, or may not be: not renewed
        for three quarters of its duration (others may take it over at the full duration).
        A renewal that is due is made here too, so the lease never depends on the heartbeat
        thread alone being scheduled in time (busy threads, or a virtual clock that every
        thread's sleeps move)."""
        if not self._lost and self.clock.monotonic() - self._renewed_at >= self.timing.renew:
            with contextlib.suppress(DeployError):  # the silence rule below decides
                self.renew()
        if self._lost:
            raise LeaseLost(self._lost)
        silent = self.clock.monotonic() - self._renewed_at
        if silent > self.timing.seconds - self.timing.renew:
            self._lost = (
                f"could not renew the lease on tenant {self.tenant} for {silent:.0f} s, so "
                "another run may take it over: stopped; run the command again"
            )
            raise LeaseLost(self._lost)

    @property
    def lost(self) -> bool:
        return bool(self._lost)

    def renew(self) -> None:
        """One heartbeat. A precondition failure means the lease was removed or taken over:
        remembered, so that check() stops every step."""
        with self._lock:
            if self._released or self._lost:
                return
            if self._write(self.generation):
                return
            now = self.store.read(self.name)
            if now is None:
                why = "it was removed (djdeploy unlock)"
            else:
                why = (
                    "it was taken over by "
                    + Holder.from_fields(now.fields, tenant=self.tenant).describe()
                )
            self._lost = (
                f"lost the lease on tenant {self.tenant}: {why}; stopped. Run the command "
                "again once the other run is done"
            )

    def _heartbeat(self) -> None:
        """Renew every `timing.renew` until released; sleeps in slices of `timing.poll` so
        that release never waits for it."""
        while not (self._released or self._lost):
            due = self._renewed_at + self.timing.renew
            now = self.clock.monotonic()
            if now < due:
                self.clock.sleep(min(self.timing.poll, due - now))
                continue
            try:
                self.renew()
            except DeployError:
                self.clock.sleep(self.timing.poll)  # check() stops the steps if this persists

    def release(self) -> None:
        """Delete our lease (only ours: generation precondition). A failure leaves it to
        expire; it never hides the command's own outcome."""
        with self._lock:
            self._released = True
            if self._lost or not self.generation:
                return
            try:
                self.store.delete(self.name, if_generation=self.generation)
            except DeployError as exc:
                self.on_notice(Notice(NoticeKind.RELEASE_FAILED, self.tenant, message=str(exc)))

    @contextlib.contextmanager
    def held(self) -> Iterator[Lease]:
        """Acquire, renew in a daemon thread, and release however the block ends."""
        try:
            self.acquire()
            threading.Thread(target=self._heartbeat, name="lease", daemon=True).start()
            yield self
        finally:
            self.release()


@dataclass(frozen=True)
class Guarded:
    """A step that acts only while the lease is ours: observe, apply and delete check it
    first, so a lost lease stops every step at its next call (the engine reports it as the
    step's failure; the caller raises LeaseLost once)."""

    step: Step
    lease: Lease

    @property
    def name(self) -> str:
        return self.step.name

    @property
    def needs(self) -> Sequence[str]:
        return self.step.needs

    @property
    def run_needs(self) -> Sequence[str]:
        return run_needs(self.step)

    @property
    def deleted_before(self) -> Sequence[str]:
        return deleted_before(self.step)

    def observe(self, cloud: Cloud) -> Any | None:
        self.lease.check()
        return self.step.observe(cloud)

    def diff(self, observed: Any | None) -> Change:
        return self.step.diff(observed)

    def apply(self, cloud: Cloud, change: Change) -> None:
        self.lease.check()
        self.step.apply(cloud, change)

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        self.lease.check()
        return self.step.delete(cloud, delete_data=delete_data)


def guarded(steps: Sequence[Step], lease: Lease) -> list[Step]:
    return [Guarded(s, lease) for s in steps]
