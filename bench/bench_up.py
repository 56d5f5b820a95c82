"""A fresh `up` against the emulator (a script, not a test):
``.venv/bin/python bench/bench_up.py [--runs 3] [--time-scale 0.001]``.

Reports, for the whole step graph on the default latency model:
- the wall time of a fresh `up` (median of --runs, the emulator reset between runs);
- the sum of every long-running operation's duration (what a sequential deployer would wait);
- the longest dependency chain, two ways: by the latency model's durations along the graph,
  and by the steps' measured times along the graph (the engine's own critical path);
- the observation lag per operation kind: from an operation being due to the request that saw
  it done (the emulator completes an operation on the first request after it is due), as a
  share of the operation's duration (goal: <= 5%, and <= 2 s real time under a minute);
- the reads and writes of a no-op `up` (the second run).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deployer.api import Target, up
from deployer.config import Config
from deployer.emulator import Emulator, serve
from deployer.engine import RunResult, order
from deployer.steps import build_steps

PROJECT = "bench-proj"


def critical_path(result: RunResult, config: Config) -> tuple[float, list[str]]:
    """The longest chain of measured step times through the dependency graph."""
    elapsed = {r.step: r.elapsed for r in result.results}
    best: dict[str, tuple[float, list[str]]] = {}
    for step in order(build_steps(config)):
        before = max((best[n] for n in step.needs), default=(0.0, []), key=lambda b: b[0])
        best[step.name] = (before[0] + elapsed[step.name], [*before[1], step.name])
    return max(best.values(), key=lambda b: b[0])


def model_chain(ops: list[dict[str, object]]) -> float:
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


def observation_lags(ops: list[dict[str, object]]) -> dict[str, tuple[float, float]]:
    """Per operation kind, the worst (lag, lag / duration), lag in unscaled clock seconds."""
    worst: dict[str, tuple[float, float]] = {}
    for op in ops:
        if not op.get("done") or op.get("completed") is None:
            continue
        duration = float(op["done_at"]) - float(op["created"])
        lag = max(0.0, float(op["completed"]) - float(op["done_at"]))  # type: ignore[arg-type]
        kind = str(op["duration_kind"])
        share = lag / duration if duration > 0 else 0.0
        old = worst.get(kind, (0.0, 0.0))
        worst[kind] = (max(old[0], lag), max(old[1], share))
    return worst


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
    lags: dict[str, tuple[float, float]] = {}
    try:
        for _ in range(args.runs):
            emu.reset()
            t0 = time.perf_counter()
            result = up(config, target=target)
            walls.append(time.perf_counter() - t0)
            assert result.ok, [r.error for r in result.results if r.error]
            ops = emu.ops.list()
            sums.append(sum(float(o["done_at"]) - float(o["created"]) for o in ops))
            chains.append(model_chain(ops))
            paths.append(critical_path(result, config))
            for kind, (lag, share) in observation_lags(ops).items():
                old = lags.get(kind, (0.0, 0.0))
                lags[kind] = (max(old[0], lag), max(old[1], share))
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
    print("observation lag per operation kind (worst; real seconds = lag / time scale):")
    for kind, (lag, share) in sorted(lags.items()):
        real = lag / args.time_scale
        print(f"  {kind:28} {lag:8.3f} s  = {real:6.2f} s real  {share:6.1%} of its duration")
    print(f"no-op up: {noop:.2f} s, {reads} reads, {len(entries) - reads} writes")


if __name__ == "__main__":
    main()
