"""How fast the command line answers: `maskstream --help`, `maskstream run --help`, and a config error, as
subprocess wall time (interpreter start included), median of N. Baseline in the same run: `python -c pass` (the
interpreter alone) and `python -c "import torch"` (what every command paid before sub-commands were imported only
when chosen).
    nice -n 10 .venv/bin/python benchmarks/cli_latency.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def wall_time(args: list[str], expect_code: int, env: dict[str, str]) -> float:
    began = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT)
    elapsed = time.perf_counter() - began
    if done.returncode != expect_code:
        raise SystemExit(f"{' '.join(args)}: exit {done.returncode}, expected {expect_code}: {done.stderr.strip()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "cam.yaml"
        bad.write_text("sources: [{id: cam, url: cam.mp4, fps_cap: -1}]\n")
        cli = [sys.executable, "-m", "pipeline.cli"]
        cases = {
            "python -c pass (interpreter alone)": ([sys.executable, "-c", "pass"], 0),
            "python -c 'import torch' (old floor of every command)": ([sys.executable, "-c", "import torch"], 0),
            "maskstream --help": ([*cli, "--help"], 0),
            "maskstream run --help": ([*cli, "run", "--help"], 0),
            "maskstream run bad.yaml (config error)": ([*cli, "run", str(bad)], 2),
            "maskstream run --annotate out.xyz (output error)": (
                [*cli, "run", "--source", "a.mp4", "--annotate", str(Path(tmp) / "out.xyz")],
                2,
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.repeats):  # interleaved, so a load spike on the shared machine hits every case alike
            for name, (command, code) in cases.items():
                times[name].append(wall_time(command, code, env))
    torch_s = statistics.median(times["python -c 'import torch' (old floor of every command)"])
    print(f"| case | median s (of {args.repeats}) | min s | vs `import torch` |")
    print("|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {min(values):.2f} | {median / torch_s:.2f}x |")


if __name__ == "__main__":
    main()
