"""A fresh `up` against the emulator (a script, not a test):
``.venv/bin/python bench/bench_up.py [--runs 3] [--time-scale 0.001]``.

Reports, for the whole step graph on the default latency model:
- the wall time of a fresh `up` (median of --runs, the emulator reset between runs);
- the sum of every long-running operation's duration (what a sequential deployer would wait);
- the longest dependency chain, two ways: by the latency model's durations along the graph,
  and by the steps' measured times along the graph (the engine's own critical path);
- the observation lag per operation kind: from an operation being due (the emulator's record)
  to the engine acting on it (the step's next apply or its done event), as a share of the
  operation's duration (goal: <= 5%, and <= 2 s real time under a minute), with the polls the
  step made for it; at --time-scale 1 these are real-time figures;
- the reads and writes of a no-op `up` (the second run).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_local import Graph, longest_chain  # bench/ is the script's own directory

from deployer.api import Target, up
from deployer.config import Config
from deployer.emulator import Emulator, serve
from deployer.engine import Event, Phase, RunResult

PROJECT = "bench-proj"


def critical_path(result: RunResult, config: Config) -> tuple[float, list[str]]:
    """The longest chain of measured step times through the step graph, its needs and
    run_needs as the engine runs them (bench_local.longest_chain): its length and steps."""
    chain = longest_chain({r.step: r.elapsed for r in result.results}, Graph.of(config))
    return sum(seconds for _, seconds in chain), [name for name, _ in chain]


def model_chain(ops: list[dict[str, Any]]) -> float:
    """The latency model's longest chain: apis -> sql instance -> database -> user -> db-init
    execution -> migrate execution -> service deploy, from the durations the emulator used."""
    longest: dict[str, float] = {}
    for op in ops:
        kind = str(op["duration_kind"])
        longest[kind] = max(longest.get(kind, 0.0), float(op["done_at"]) - float(op["created"]))
    chain = (
        "serviceusage.enable",
        "sql.instance.create",
        "sql.database",
        "sql.user",
        "run.execution",
        "run.execution",
        "run.service.deploy",
    )
    return sum(longest.get(kind, 0.0) for kind in chain)


@dataclass
class Lag:
    """The worst observation lag seen for one operation kind."""

    lag: float = 0.0  # clock seconds from due to the engine acting
    share: float = 0.0  # lag / the operation's duration
    polls: int = 0  # the most observations the engine made while it ran

    def merge(self, lag: float, share: float, polls: int) -> None:
        self.lag, self.share = max(self.lag, lag), max(self.share, share)
        self.polls = max(self.polls, polls)


Timed = tuple[float, Event]  # an engine event and the clock's now() when it was emitted


def recorder(into: list[Timed]) -> Callable[[Event], None]:
    """An on_event that keeps each event with the time (the emulator's clock: epoch seconds)."""
    return lambda event: into.append((time.time(), event))


def observation_lags(ops: list[dict[str, Any]], events: list[Timed], lags: dict[str, Lag]) -> None:
    """Per operation kind, from the operation being due to the engine acting on it: the step
    whose apply started it (the latest apply naming that kind before the operation's creation),
    then that step's first apply or done after the operation was due (or its wait for its
    run_needs: a job made before what its execution needs is done)."""
    for op in ops:
        kind, created, due = str(op["duration_kind"]), float(op["created"]), float(op["done_at"])
        starts = [
            (t, e)
            for t, e in events
            if e.phase is Phase.APPLY and e.change is not None and e.change.expect == kind
            if t <= created
        ]
        if not starts:
            continue  # not started by an apply naming its kind (a bootstrap's, a delete's)
        started, start = max(starts, key=lambda s: s[0])
        step = start.step
        later = [(t, e) for t, e in events if e.step == step and t > started]
        acted = next(
            (
                t
                for t, e in later
                if t >= due
                and (
                    e.phase in (Phase.APPLY, Phase.DONE, Phase.FAILED)
                    or (e.phase is Phase.WAIT and e.change is None)  # waits for its run_needs
                )
            ),
            None,
        )
        if acted is None:
            continue
        polls = 1 + sum(1 for t, e in later if e.phase is Phase.WAIT and t < acted)
        duration = due - created
        lag = acted - due
        lags.setdefault(kind, Lag()).merge(lag, lag / duration if duration > 0 else 0.0, polls)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--time-scale", type=float, default=0.001)
    args = parser.parse_args()
    config = Config("demo", project=PROJECT)
    emu = Emulator(time_scale=args.time_scale)
    running = serve(emu)
    target = Target(endpoint=running.url, time_scale=args.time_scale)
    walls, sums, chains, paths = [], [], [], []
    lags: dict[str, Lag] = {}
    try:
        for _ in range(args.runs):
            emu.reset()
            events: list[Timed] = []
            t0 = time.perf_counter()
            result = up(config, target=target, on_event=recorder(events))
            walls.append(time.perf_counter() - t0)
            assert result.ok, [r.error for r in result.results if r.error]
            ops = emu.ops.list()
            sums.append(sum(float(o["done_at"]) - float(o["created"]) for o in ops))
            chains.append(model_chain(ops))
            paths.append(critical_path(result, config))
            observation_lags(ops, events, lags)
        emu.transcript.clear()
        t0 = time.perf_counter()
        assert up(config, target=target).ok
        noop = time.perf_counter() - t0
        entries = emu.transcript.entries()
    finally:
        running.stop()
    reads = sum(1 for e in entries if e["method"] == "GET" or e["path"].endswith(":getIamPolicy"))
    length = statistics.median(p[0] for p in paths)
    chain = max(paths, key=lambda p: p[0])[1]
    print(f"fresh up, time scale {args.time_scale}, {args.runs} runs")
    print(f"  wall time (median)                 {statistics.median(walls):7.2f} s")
    print(f"  sum of operation durations         {statistics.median(sums):7.2f} s")
    print(f"  longest chain, latency model       {statistics.median(chains):7.2f} s")
    print(f"  longest chain, measured step times {length:7.2f} s  ({' > '.join(chain)})")
    print("  (measured minus model: per-request overhead on the chain, client start-up, and")
    print("   poll granularity: Options.poll_delay, docs/architecture.md 'The engine')")
    print("observation lag per operation kind, due to the engine acting (worst of the runs;")
    print("real seconds = lag / time scale), and the most polls the step made for one:")
    for kind, w in sorted(lags.items()):
        real = w.lag / args.time_scale
        print(
            f"  {kind:34} {w.lag:8.3f} s = {real:6.2f} s real {w.share:6.1%} of its duration, "
            f"{w.polls:3} polls"
        )
    print(f"no-op up: {noop:.2f} s, {reads} reads, {len(entries) - reads} writes")


if __name__ == "__main__":
    main()
