"""How fast the command line answers: `maskstream --help`, `maskstream run --help`, and a config error, as
subprocess wall time (interpreter start included), median of N. Baseline in the same run: `python -c pass` (the
interpreter alone) and `python -c "import torch"` (what every command paid before sub-commands were imported only
when chosen).
    nice -n 10 .venv/bin/python benchmarks/cli_latency.py [--repeats 7] [--before OTHER_CHECKOUT]
`--before` adds the same commands run from another checkout (e.g. the commit before this change), in the same run.
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
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=env["PYTHONPATH"])
    elapsed = time.perf_counter() - began
    if done.returncode != expect_code:
        raise SystemExit(f"{' '.join(args)}: exit {done.returncode}, expected {expect_code}: {done.stderr.strip()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--before", type=Path, help="another checkout whose CLI is timed alongside")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before_env = {**os.environ, "PYTHONPATH": str(args.before.resolve())} if args.before else None
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "cam.yaml"
        bad.write_text("sources: [{id: cam, url: cam.mp4, fps_cap: -1}]\n")
        cli = [sys.executable, "-m", "pipeline.cli"]
        cases: dict[str, tuple[list[str], int, dict[str, str]]] = {
            "python -c pass (interpreter alone)": ([sys.executable, "-c", "pass"], 0, env),
            "python -c 'import torch' (old floor of every command)": ([sys.executable, "-c", "import torch"], 0, env),
            "maskstream --help": ([*cli, "--help"], 0, env),
            "maskstream run --help": ([*cli, "run", "--help"], 0, env),
            "maskstream run bad.yaml (config error)": ([*cli, "run", str(bad)], 2, env),
            "maskstream run --annotate out.xyz (output error)": (
                [*cli, "run", "--source", "a.mp4", "--annotate", str(Path(tmp) / "out.xyz")],
                2,
                env,
            ),
        }
        if before_env is not None:
            cases["before: maskstream --help"] = ([*cli, "--help"], 0, before_env)
            cases["before: maskstream run bad.yaml (config error)"] = ([*cli, "run", str(bad)], 2, before_env)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.repeats):  # interleaved, so a load spike on the shared machine hits every case alike
            for name, (command, code, case_env) in cases.items():
                times[name].append(wall_time(command, code, case_env))
    torch_s = statistics.median(times["python -c 'import torch' (old floor of every command)"])
    print(f"| case | median s (of {args.repeats}) | min s | vs `import torch` |")
    print("|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {min(values):.2f} | {median / torch_s:.2f}x |")


if __name__ == "__main__":
    main()
