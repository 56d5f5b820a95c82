"""Benchmark: build the source archive of a Django-sized project (~2,000 files).

    .venv/bin/python bench/bench_archive.py [--files 2000] [--repeat 5]

Generates a synthetic project (Python modules, templates, static files, a few larger assets,
plus excluded noise: .git, __pycache__, node_modules, media/) in a temporary directory, then
reports the median wall time of build_archive(), the archive size, and the peak Python memory
(tracemalloc) of one build. Not a test: numbers only.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deployer.archive import build_archive, container_dir


def make_project(root: Path, files: int, seed: int = 1) -> int:
    """A synthetic project with ``files`` kept files; returns their total size in bytes."""
    rng = random.Random(seed)
    words = [f"name{i}" for i in range(500)]
    (root / "manage.py").write_text("#!/usr/bin/env python\nimport django\n")
    total = 0
    for i in range(files - 1):
        kind = i % 10
        app = root / f"app{i % 40}"
        if kind < 6:
            path = app / f"module_{i}.py"
            text = "\n".join(
                f"def {rng.choice(words)}_{j}(x):\n    return x + {j}" for j in range(60)
            )
        elif kind < 8:
            path = app / "templates" / f"page_{i}.html"
            text = "<div>" + " ".join(rng.choice(words) for _ in range(800)) + "</div>\n"
        elif kind < 9:
            path = app / "static" / f"style_{i}.css"
            text = "".join(f".c{j} {{ color: #{j:06x}; }}\n" for j in range(400))
        else:
            path = app / "static" / f"asset_{i}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            data = rng.randbytes(40_000)
            path.write_bytes(data)
            total += len(data)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        total += len(text)
    # excluded noise
    for noise in (".git/objects", "node_modules/pkg", "media/uploads", "app0/__pycache__"):
        d = root / noise
        d.mkdir(parents=True, exist_ok=True)
        for j in range(50):
            (d / f"junk{j}.bin").write_bytes(rng.randbytes(10_000))
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        size = make_project(root, args.files)
        container = container_dir()
        build_archive(root, container)  # warm the page cache
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            archive = build_archive(root, container)
            times.append(time.perf_counter() - t0)
        tracemalloc.start()
        build_archive(root, container)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    print(f"project: {args.files} files, {size / 1e6:.1f} MB kept (+200 excluded noise files)")
    print(f"archive: {len(archive.data) / 1e6:.2f} MB gz, tag {archive.tag}")
    print(
        f"build_archive: median {statistics.median(times) * 1000:.0f} ms, "
        f"min {min(times) * 1000:.0f} ms over {args.repeat} runs"
    )
    print(f"peak Python memory during one build: {peak / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
