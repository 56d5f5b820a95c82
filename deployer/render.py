"""The only module that prints: progress for up/destroy, plan and status tables, --json.

Progress is a live rich table on a terminal and one plain line per event elsewhere (CI logs,
pipes). Nothing here ever sees a secret value: Changes carry `Secret` objects whose str is ***.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Column, Table
from rich.text import Text

from deployer.config import Config
from deployer.engine import Event, Phase, RunResult
from deployer.gcp.logging import LogEntry
from deployer.health import TenantOverview
from deployer.lease import Holder, Notice, NoticeKind
from deployer.management import ManageRun
from deployer.rollbacks import Rollback
from deployer.steps.base import Action, Change
from deployer.steps.monitoring import UptimeResult
from deployer.steps.rotation import Rotated

_STYLE = {
    Action.NOOP: "green",
    Action.CREATE: "cyan",
    Action.UPDATE: "yellow",
    Action.RUN: "cyan",
    Action.WAIT: "blue",
    Action.DELETE: "red",
    Action.REFUSE: "magenta",
}


def _value(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def change_json(change: Change) -> dict[str, Any]:
    return {
        "step": change.step,
        "resource": change.resource,
        "action": change.action.value,
        "reason": change.reason,
        "fields": [{"path": f.path, "old": f.old, "new": f.new} for f in change.fields],
        "failure": str(change.failure or ""),
        "info": dict(change.info),
    }


WAIT_NOTE_EVERY = 30.0  # seconds between two "waiting for the lease" lines


def holder_json(holder: Holder | None) -> dict[str, Any] | None:
    return (
        None
        if holder is None
        else {**holder.fields(), "pid": holder.pid, "seconds": holder.seconds}
    )


def in_progress(holder: Holder | None, out: Console) -> None:
    """plan and status take no lease: say when what they show may be changing."""
    if holder is not None:
        out.print(
            f"deploy in progress: {holder.describe()} (what follows may be changing)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def show_table(table: Table, out: Console) -> None:
    """On a terminal, as rich draws it; elsewhere (a pipe, a CI log) whole lines, never cut
    (the CLI's consoles are wide there), without the padding rich ends each one with."""
    if out.is_terminal:
        out.print(table)
        return
    with out.capture() as captured:
        out.print(table)
    for line in captured.get().splitlines():
        out.print(line.rstrip(), markup=False, highlight=False, soft_wrap=True)


def run_error(result: RunResult, flags: str = "") -> str | None:
    """--json's top-level `error`: what made the run fail, each failed step by name (the steps
    that only waited for it are in `steps`), None for a run that went through; `flags`: as for
    same_target."""
    failed = [r.error for r in result.results if r.error and not r.waited_for]
    return same_target("; ".join(failed), flags) or None


#: a command a line tells to run, in backquotes; `djdeploy emulator ...`, `djdeploy init` and
#: `djdeploy ci github-actions` (files only) take no --emulator
_HINTED = re.compile(r"`(djdeploy (?!emulator\b|init\b|ci github-actions\b)[^`]*)`")


def same_target(line: str, flags: str) -> str:
    """``line`` with ``flags`` (" --emulator --state-dir D" of an --emulator command, "" for
    none) added to each backquoted `djdeploy ...` command it tells to run, so that the command,
    copied as printed, goes where this one went: error lines, progress, the summary."""
    if not flags:
        return line

    def same(match: re.Match[str]) -> str:
        command = match[1]
        if "--emulator" in command.split():
            return match[0]
        head, dashes, rest = command.partition(" -- ")  # manage's own arguments stay last
        return f"`{head}{flags}{dashes}{rest}`"

    return _HINTED.sub(same, line)


def dump_json(doc: Any, out: IO[str] | None = None) -> None:
    print(json.dumps(doc, indent=2, default=str), file=out or sys.stdout)


#: the step column's width until the command's steps are known (Progress.steps)
STEP_WIDTH = 16


class Progress:
    """Receives engine events (from worker threads) and shows them; ``steps`` (the command's
    step names, before any runs) sizes the step column to the longest."""

    def __init__(
        self,
        *,
        console: Console | None = None,
        quiet: bool = False,
        verbose: bool = False,
        flags: str = "",
    ) -> None:
        """`flags`: as for same_target, added to the commands the lines tell to run."""
        self.console = console or Console(stderr=True, emoji=False)  # as cli's: text as it is
        self.flags = flags
        self.quiet = quiet
        self.verbose = verbose
        self.live_mode = self.console.is_terminal and not quiet
        self._rows: dict[str, tuple[str, str, float]] = {}
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._waiting: tuple[str, float] | None = None  # the holder we said we wait for, when
        self.width = STEP_WIDTH

    def __enter__(self) -> Progress:
        if self.live_mode:
            self._live = Live(self._table(), console=self.console, refresh_per_second=8)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.__exit__(None, None, None)

    def steps(self, names: list[str]) -> None:
        self.width = max((len(name) for name in names), default=STEP_WIDTH)

    def __call__(self, event: Event) -> None:
        if self.quiet:
            return
        detail = event.message
        if event.change is not None:
            action = event.change.action.value
            if event.phase is Phase.DONE:  # the action that was taken, or "ok"
                action = event.message or "ok"
            detail = f"{action}: {event.change.reason}"
            if event.change.failure:
                detail += f" ({event.change.failure})"
        detail = same_target(detail, self.flags)
        with self._lock:
            self._rows[event.step] = (event.phase.value, detail, event.elapsed)
            if self._live is not None:
                self._live.update(self._table())
            elif event.phase not in (Phase.WAIT, Phase.OBSERVE) or self.verbose:
                self.console.print(
                    f"{event.step:<{self.width}} {event.phase.value:<8} {event.elapsed:6.1f}s  "
                    f"{detail}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )

    def lease(self, notice: Notice) -> None:
        """The tenant's lease: who we wait for (again every WAIT_NOTE_EVERY seconds), what
        we took over, what we could not release. Shown even with --json (on stderr): a run
        that waits silently looks hung."""
        holder = notice.holder
        line = ""
        if notice.kind is NoticeKind.WAITING and holder is not None:
            said = self._waiting
            if said is None or said[0] != holder.id or notice.waited - said[1] >= WAIT_NOTE_EVERY:
                self._waiting = (holder.id, notice.waited)
                line = (
                    f"waiting for the lease on tenant {notice.tenant} held by "
                    f"{holder.describe()} ({notice.waited:.0f}s so far; --no-wait fails at once, "
                    f"`djdeploy unlock --tenant {notice.tenant}` if it is stuck)"
                )
        elif notice.kind is NoticeKind.TOOK_OVER and holder is not None:
            line = (
                f"took over the lease on tenant {notice.tenant}: {holder.describe()} had not "
                f"renewed it for {holder.seconds:g}s"
            )
        elif notice.kind is NoticeKind.ACQUIRED and (self._waiting or self.verbose):
            line = f"took the lease on tenant {notice.tenant} after {notice.waited:.1f}s"
        elif notice.kind is NoticeKind.RELEASE_FAILED:
            line = (
                f"warning: could not release the lease on tenant {notice.tenant} "
                f"({notice.message}); it expires by itself"
            )
        if line:
            with self._lock:
                self.console.print(
                    same_target(line, self.flags), markup=False, highlight=False, soft_wrap=True
                )

    def _table(self) -> Table:
        table = Table(box=None, pad_edge=False)
        for col in ("step", "state", "elapsed", "detail"):
            table.add_column(col)
        for step, (phase, detail, elapsed) in self._rows.items():
            style = {"done": "green", "failed": "red", "skipped": "dim"}.get(phase, "cyan")
            table.add_row(step, Text(phase, style=style), f"{elapsed:.1f}s", Text(detail))
        return table


def _local_url_line(local_url: str, note: str, out: Console) -> None:
    if local_url:
        line = f"local url: {local_url}" + (f" ({note})" if note else "")
        out.print(line, markup=False, highlight=False, soft_wrap=True)


def up_result(
    result: RunResult,
    *,
    as_json: bool,
    out: Console,
    local_url: str = "",
    local_note: str = "",
    flags: str = "",
) -> None:
    """`local_url`: where an executing emulator's front door serves the service ("" none);
    `local_note`: when it does (the built-in emulator stops with the command); `flags`: as for
    same_target."""
    url = result.info("url")
    if as_json:
        dump_json(
            {
                "ok": result.ok,
                "error": run_error(result, flags),
                "url": url or None,
                "local_url": local_url or None,
                "elapsed": round(result.elapsed, 3),
                "steps": [
                    {
                        "step": r.step,
                        "elapsed": round(r.elapsed, 3),
                        "error": r.error,
                        "first": change_json(r.first) if r.first else None,
                        "last": change_json(r.last) if r.last else None,
                    }
                    for r in result.results
                ],
            }
        )
        return
    changed = sum(1 for r in result.results if r.changed)
    if result.ok:
        out.print(
            f"[green]done[/] in {result.elapsed:.1f}s: {changed} step(s) changed, "
            f"{len(result.results) - changed} already right"
        )
        if url:
            out.print(f"url: {url}", markup=False, soft_wrap=True)
            _local_url_line(local_url, local_note, out)
    else:
        by_step = {r.step: r for r in result.results}
        for r in result.results:
            if r.error and not r.waited_for:
                error = same_target(r.error, flags)
                out.print(Text.assemble(("failed", "red"), " ", error), soft_wrap=True)
        for r in result.results:
            if r.waited_for:
                why = "did not run either" if by_step[r.waited_for].waited_for else "failed"
                line = f" {r.step}: waits for {r.waited_for}, which {why}"
                out.print(Text.assemble(("not run", "yellow"), line), soft_wrap=True)
        again = same_target("run `djdeploy up` again", flags)
        line = f"{again} once the cause is fixed: it resumes where it stopped"
        out.print(line, markup=False, highlight=False, soft_wrap=True)


def admin_login(config: Config, *, url: str, endpoint: str | None, out: Console) -> None:
    """After a good `up`: how to log into /admin/, never the password itself (it is in Secret
    Manager; the gcloud command reveals it on request). `config`: resolved (its project is the
    one deployed to); `endpoint`: the emulator's URL, where the command points gcloud (the
    emulator takes any token; docs/getting-started.md), None on Google."""
    names = config.names
    out.print(
        f"admin: {url.rstrip('/')}/admin/ as {config.superuser.username} "
        f"(or {config.superuser.email} when the user model logs in by email)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    command = (
        f"gcloud secrets versions access latest "
        f"--secret={names.secret_superuser_password} --project={config.project}"
    )
    if endpoint:
        command = (
            f"CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER={endpoint.rstrip('/')}/ "
            f"CLOUDSDK_AUTH_ACCESS_TOKEN=emulator {command}"
        )
    out.print(f"  password: {command}", markup=False, highlight=False, soft_wrap=True)


def leaves(path: str, old: Any, new: Any) -> Iterator[tuple[str, Any, Any]]:
    """Where two values differ, down to the leaves: a one-field change inside a container
    list is `containers[0].resources.limits.memory: 512Mi -> 1Gi`, not the two lists."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in dict.fromkeys([*old, *new]):
            if old.get(key) != new.get(key):
                yield from leaves(f"{path}.{key}" if path else str(key), old.get(key), new.get(key))
    elif isinstance(old, list) and isinstance(new, list):
        was, now = _by_name(old), _by_name(new)
        if was is not None and now is not None and list(was) != list(now):
            # named items (env vars, volumes, mounts) added or removed: `env[REDIS_URL]`, by
            # name, not the two whole lists cut short
            for name in dict.fromkeys([*was, *now]):
                if was.get(name) != now.get(name):
                    yield from leaves(f"{path}[{name}]", was.get(name), now.get(name))
        elif len(old) == len(new):
            for i, (a, b) in enumerate(zip(old, new, strict=True)):
                if a != b:
                    yield from leaves(f"{path}[{i}]", a, b)
        else:
            yield path, old, new
    else:
        yield path, old, new


def _by_name(items: list[Any]) -> dict[str, Any] | None:
    """A list of dicts each with its own "name" (env vars, volumes, mounts), by name; else
    None."""
    named = {i["name"]: i for i in items if isinstance(i, dict) and isinstance(i.get("name"), str)}
    return named if len(named) == len(items) else None


def changed_fields(change: Change) -> list[tuple[str, Any, Any]]:
    return [leaf for f in change.fields for leaf in leaves(f.path, f.old, f.new)]


#: the narrowest the resource column gets on a narrow terminal
RESOURCE_MIN_WIDTH = 20


def _kept(change: Change) -> bool:
    """destroy left it in place (data, shared, not ours): its step says why, after "kept"."""
    return change.action is Action.NOOP and change.reason.startswith("kept")


def _longest_word(text: str) -> int:
    """The widest a column can wrap `text` to, its indentation kept."""
    return len(text) - len(text.lstrip()) + max((len(word) for word in text.split()), default=0)


def changes_table(changes: Sequence[Change], *, title: str, width: int) -> Table:
    """plan and destroy: a row per step, then one per changed field. Nothing is ever cut
    (long words fold); the resource column is as wide as its longest word, no wider than a
    third of the console's `width`, so only a resource of several names wraps, between them."""
    rows: list[tuple[str, str, Text, str]] = []
    for c in changes:
        action = Text("keep", "yellow") if _kept(c) else Text(c.action.value, _STYLE[c.action])
        why = c.reason.removeprefix("kept: ") + (f" — {c.failure}" if c.failure else "")
        rows.append((c.step, c.resource, action, why))
        for path, old, new in changed_fields(c):
            rows.append(("", f"  {path}", Text(""), f"{_value(old)} -> {_value(new)}"))
    longest = max((_longest_word(row[1]) for row in rows), default=0)
    resource = max(RESOURCE_MIN_WIDTH, min(longest, width // 3))
    table = Table(
        Column("step", no_wrap=True),
        Column("resource", overflow="fold", max_width=resource),
        Column("action", no_wrap=True),
        Column("why", overflow="fold"),
        title=title,
        box=None,
        pad_edge=False,
        title_justify="left",
    )
    for step, name, action, why in rows:
        table.add_row(Text(step), Text(name), action, Text(why))
    return table


def plan(changes: Sequence[Change], *, holder: Holder | None, as_json: bool, out: Console) -> None:
    pending = [c for c in changes if c.action is not Action.NOOP]
    if as_json:
        dump_json(
            {
                "changes_pending": bool(pending),
                "lease": holder_json(holder),
                "steps": [change_json(c) for c in changes],
            }
        )
        return
    in_progress(holder, out)
    show_table(changes_table(changes, title="plan", width=out.width), out)
    out.print(f"{len(pending)} step(s) would change" if pending else "nothing to change")


def state_of(change: Change) -> str:
    """status vocabulary: ok / missing / drift / failed / in-progress (Change.state)."""
    return change.state


def summary(changes: Sequence[Change]) -> dict[str, str]:
    """The facts a user looks for first: where the service is, what serves, last migration."""
    by_step = {c.step: c.info for c in changes}
    service, migrate = by_step.get("service", {}), by_step.get("migrate", {})
    return {
        "url": service.get("url", ""),
        "other_urls": service.get("urls", ""),  # its a.run.app URL, then config.domains
        "ready_revision": service.get("revision", ""),
        "pinned_revision": service.get("pinned", ""),  # all traffic, by `djdeploy rollback`
        "last_migrate_execution": migrate.get("execution", ""),
    }


def _state_dir_line(state_dir: Path | None, out: Console) -> None:
    if state_dir is not None:
        out.print(f"emulator state: {state_dir}", markup=False, highlight=False, soft_wrap=True)


def status(
    changes: Sequence[Change],
    *,
    tenant: str,
    holder: Holder | None,
    state_dir: Path | None = None,
    as_json: bool,
    out: Console,
    local_url: str = "",
    local_note: str = "",
    uptime: UptimeResult | None = None,
) -> None:
    """`state_dir`: the built-in emulator's, shown so a user can find (or reset) it;
    `local_url`, `local_note`: as for up_result; `uptime`: the uptime check's latest result."""
    facts = summary(changes)
    if as_json:
        dump_json(
            {
                "tenant": tenant,
                **facts,
                "url": facts["url"] or None,
                "uptime": None if uptime is None else dataclasses.asdict(uptime),
                "local_url": local_url or None,
                "emulator_state_dir": None if state_dir is None else str(state_dir),
                "lease": holder_json(holder),
                "steps": [{**change_json(c), "state": state_of(c)} for c in changes],
            }
        )
        return
    in_progress(holder, out)
    title = Text(f"tenant {tenant}")
    table = Table(title=title, box=None, pad_edge=False, title_justify="left")
    for col in ("step", "state", "detail"):
        table.add_column(col)
    colour = {"ok": "green", "missing": "yellow", "drift": "yellow", "failed": "red"}
    for c in changes:
        state = state_of(c)
        detail = str(c.failure or c.reason)
        if c.fields:
            detail += ": " + ", ".join(path for path, _, _ in changed_fields(c))
        table.add_row(Text(c.step), Text(state, style=colour.get(state, "cyan")), Text(detail))
    show_table(table, out)
    for key, value in facts.items():
        if value:
            out.print(
                f"{key.replace('_', ' ')}: {value}", markup=False, highlight=False, soft_wrap=True
            )
        if key == "url" and value:
            _local_url_line(local_url, local_note, out)
    _state_dir_line(state_dir, out)
    for line in [*secret_lines(changes), *domain_lines(changes), *ci_lines(changes)]:
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    if uptime is not None:
        out.print(uptime_line(uptime), markup=False, highlight=False, soft_wrap=True)


def uptime_line(result: UptimeResult) -> str:
    """status: "uptime check ID: passing since T (last result T', 6 locations)", and the
    alert policy's open alert."""
    head = f"uptime check {result.check}: "
    if result.state == "unknown":
        return head + result.note
    since = ("since at least " if result.whole_window else "since ") + result.since
    alert = f"; alert open since {result.alert_since}" if result.alert_since else ""
    if result.state == "failing":
        where = f"from {len(result.failing)} of {result.locations} locations"
        return head + f"failing {where} {since} (last result {result.checked}){alert}"
    last = f"(last result {result.checked}, {result.locations} locations)"
    return head + f"passing {since} {last}{alert}"


def tenants(
    found: Sequence[TenantOverview],
    *,
    state_dir: Path | None = None,
    as_json: bool,
    out: Console,
) -> None:
    """`status` without --tenant: each tenant's resources, then each service's URL(s) and
    health."""
    if as_json:
        dump_json(
            {
                "tenants": {
                    t.tenant: {
                        "resources": list(t.resources),
                        "services": [
                            {
                                **dataclasses.asdict(s),
                                "url": s.url or None,
                                "local_url": s.local_url or None,
                            }
                            for s in t.services
                        ],
                    }
                    for t in found
                },
                "emulator_state_dir": None if state_dir is None else str(state_dir),
            }
        )
        return
    if not found:
        out.print("no djdeploy tenants found in this project")
    for t in found:
        lines = [f"{t.tenant}: {', '.join(t.resources)}"]
        for s in t.services:
            urls = " ".join(u for u in (s.url, s.local_url and f"(local: {s.local_url})") if u)
            lines.append(f"  {s.service}: {urls or '-'} health: {s.health}")
        for line in lines:
            out.print(line, markup=False, highlight=False, soft_wrap=True)
    _state_dir_line(state_dir, out)


def destroyed(changes: Sequence[Change], *, as_json: bool, out: Console, nothing: str = "") -> None:
    """The table (each kept resource once, with its own reason: data, shared, not ours), then
    what was deleted and kept in one line; ``nothing`` (no resource of the tenant found): that
    one line instead."""
    if as_json:
        dump_json({"steps": [change_json(c) for c in changes]})
        return
    if nothing:
        out.print(Text(f"nothing to destroy: {nothing}"), soft_wrap=True)
        return
    show_table(changes_table(changes, title="destroy", width=out.width), out)
    out.print(destroy_summary(changes), markup=False, highlight=False, soft_wrap=True)


def destroy_summary(changes: Sequence[Change]) -> str:
    """ "deleted 7, kept 6 (5 hold data: --delete-data deletes them)"; the shared staging
    bucket and what is not ours are kept either way, so they name no option."""
    deleted = sum(1 for c in changes if c.action is Action.DELETE)
    kept = [c for c in changes if _kept(c)]
    data = sum(1 for c in kept if "--delete-data" in c.reason)
    line = f"deleted {deleted}, kept {len(kept)}"
    if data:
        them = "them" if data > 1 else "it"
        line += f" ({data} {'hold' if data > 1 else 'holds'} data: --delete-data deletes {them})"
    return line


def unlocked(holder: Holder | None, *, tenant: str, out: Console) -> None:
    if holder is None:
        out.print(f"tenant {tenant} is not locked: nothing to remove", markup=False, soft_wrap=True)
        return
    out.print(
        f"removed the lease on tenant {tenant} held by {holder.describe()}",
        markup=False,
        soft_wrap=True,
    )


_SEVERITY_STYLE = {
    "WARNING": "yellow",
    "ERROR": "red",
    "CRITICAL": "bold red",
    "ALERT": "bold red",
    "EMERGENCY": "bold red",
}


def log_entry(entry: LogEntry, *, as_json: bool, out: Console) -> None:
    """One log line: time (UTC, to the millisecond), severity, source, message; the message and
    source escaped, since log text is full of brackets. --json: one object per line."""
    if as_json:
        print(json.dumps(entry.to_json()), flush=True)
        return
    when = entry.timestamp.replace("T", " ")[:23]
    style = _SEVERITY_STYLE.get(entry.severity, "default")
    source, message = escape(entry.source), escape(entry.message)
    out.print(
        f"[dim]{escape(when)}[/] [{style}]{entry.severity:<8}[/] [cyan]{source}[/] {message}",
        highlight=False,
        soft_wrap=True,
    )


def no_log_entries(
    source: tuple[str, str], *, since: str | None, severity: str | None, err: Console
) -> None:
    """`logs` found nothing: say so (on stderr: stdout stays one entry per line)."""
    kind, name = source
    bounds = [f"in the last {since}"] if since else []
    bounds += [f"at {severity.upper()} or worse"] if severity else []
    where = f" ({', '.join(bounds)})" if bounds else ""
    err.print(Text(f"no log entries of {kind} {name}{where}"), soft_wrap=True)


def manage_run(
    run: ManageRun, *, tenant: str, as_json: bool, out: Console, err: Console, flags: str = ""
) -> None:
    """A manage command's execution: its name (--no-wait), or how it ended (the failure is the
    CLI's one error line); `flags`: as for same_target."""
    if as_json:
        dump_json(run.to_json())
        return
    if run.state == "running":
        out.print(run.execution, markup=False, highlight=False, soft_wrap=True)
        err.print(
            same_target(
                f"started; its logs: `djdeploy logs --tenant {tenant} --job manage` "
                f"(execution {run.execution})",
                flags,
            ),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    elif run.state == "succeeded":
        err.print(
            f"execution {run.execution} succeeded (revision {run.revision})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def manage_started(run: ManageRun, *, err: Console) -> None:
    err.print(
        f"execution {run.execution} started (revision {run.revision}); its logs follow",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def manage_interrupted(
    run: ManageRun, *, tenant: str, err: Console, word: str = "interrupted", flags: str = ""
) -> None:
    """Ctrl-C (or SIGTERM: ``word`` "terminated") while a command runs: it goes on in the
    cloud (running it again would run it twice)."""
    line = (
        f"{word}: execution {run.execution} keeps running; `djdeploy logs --tenant "
        f"{tenant} --job manage --follow` shows it, `gcloud run jobs executions cancel "
        f"{run.execution}` stops it"
    )
    err.print(
        same_target(line, flags),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def rolled_back(done: Rollback, *, tenant: str, as_json: bool, out: Console) -> None:
    if as_json:
        dump_json(done.to_json())
        return
    if not done.pinned:
        what = f"unpinned: all traffic to the latest revision {done.revision}"
    else:
        what = f"pinned to {done.revision} by rollback: it has all the traffic"
    if not done.changed:
        what = f"nothing to do: already {what}"
    elif done.previous and done.previous != done.revision:
        what += f" (was {done.previous})"
    lines = [what]
    if done.forced:
        lines.append(
            "--force: the database keeps migrations this revision does not know: "
            + ", ".join(done.forced)
        )
    if done.unchecked:
        lines.append(f"--force: migrations not compared: {done.unchecked}")
    if done.pinned and done.changed:
        lines.append(
            f"`djdeploy up` keeps the pin; `djdeploy rollback --tenant {tenant} --undo` "
            "moves traffic back to the latest revision"
        )
    for line in lines:
        out.print(line, markup=False, highlight=False, soft_wrap=True)


def rotation_line(r: Rotated) -> str:
    """One secret's rotation, as `secrets rotate` ends with it (versions only, never values)."""
    what = f"{r.kind} (secret {r.secret})"
    if not r.done:
        return (
            f"{what}: rotation from version {r.old} not finished: run `djdeploy secrets rotate` "
            "or `djdeploy up` again to finish it (the old version stays enabled until then)"
        )
    if r.new is None:
        return f"{what}: rotation abandoned (its new version was disabled); version {r.old} kept"
    line = f"{what}: rotated, version {r.old} -> {r.new}"
    if r.resumed:
        line += " (finished an interrupted rotation)"
    kept = ", ".join(r.kept)
    if r.kind == "admin-password":  # the migrate job moved the superuser (superuser.py)
        if kept:
            line += f"; version {kept} kept enabled as the previous password"
        return line + (
            "; a superuser that still had the generated password now has the new one "
            "(a password changed by hand is kept)"
        )
    if r.kept:
        return line + f"; version {kept} kept enabled as SECRET_KEY_FALLBACKS"
    return line + "; the older versions are disabled"


def rotated(
    rotations: Sequence[Rotated],
    result: RunResult,
    *,
    as_json: bool,
    out: Console,
    flags: str = "",
) -> None:
    if as_json:  # the secrets, then what each step ended with (up --json has more)
        dump_json(
            {
                "ok": result.ok and all(r.done for r in rotations),
                "error": run_error(result, flags)
                or same_target("; ".join(rotation_line(r) for r in rotations if not r.done), flags)
                or None,
                "elapsed": round(result.elapsed, 3),
                "secrets": [dataclasses.asdict(r) for r in rotations],
                "steps": [
                    {"step": r.step, "error": r.error, "last": r.last and change_json(r.last)}
                    for r in result.results
                ],
            }
        )
        return
    up_result(result, as_json=False, out=out, flags=flags)
    if not rotations:  # the up before the rotation failed
        out.print("nothing rotated: the deployment is brought up to date first", soft_wrap=True)
    for r in rotations:
        out.print(
            same_target(rotation_line(r), flags), markup=False, highlight=False, soft_wrap=True
        )


def secret_lines(changes: Sequence[Change]) -> list[str]:
    """status: each generated secret's version, its age, and a rotation under way."""
    info = next((c.info for c in changes if c.step == "secrets"), {})
    lines = []
    for key, version in info.items():
        if not key.startswith("secret ") or " " in key.removeprefix("secret "):
            continue
        line = f"{key}: {version}"
        if f"{key} age" in info:
            line += f", {info[f'{key} age']} old (created {info[f'{key} created']})"
        if f"{key} rotating from" in info:
            line += f"; rotating from {info[f'{key} rotating from']}"
        lines.append(line)
    return lines


def domain_lines(changes: Sequence[Change]) -> list[str]:
    """status: each custom domain's DNS records to create and its certificate's state."""
    info = next((c.info for c in changes if c.step == "domains"), {})
    return [f"{key}: {value}" for key, value in info.items()]


def ci_lines(changes: Sequence[Change]) -> list[str]:
    """status: where a push deploys from ([ci]) and the trigger's newest build."""
    info = next((c.info for c in changes if c.step == "ci"), {})
    if not info:
        return []
    line = f"deploy on push: {info['repository']} {info['branch']} (trigger {info['trigger']})"
    last = info.get("last build")
    return [line + (f"; last build {last}" if last else "; no build yet")]
