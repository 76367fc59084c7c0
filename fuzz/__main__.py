"""``python -m fuzz``: coverage-guided fuzzing of the protocol core (atheris).

    python -m fuzz                     # every target, 1 minute each
    python -m fuzz --minutes 30 connection
    python -m fuzz --runs 200000       # a fixed number of executions per target
    python -m fuzz --seconds 10        # a short run (CI does this)

Each target (fuzz/targets.py) starts from its seed corpus in fuzz/corpus/<target>
(real conversations recorded from libzmq 4.3.5, see fuzz/make_corpus.py) and the
dictionary fuzz/zmtp.dict (the protocol's magic strings).  New inputs go to
fuzz/work/<target>/ (not in git); an input that breaks an oracle is written to
fuzz/work/crashes/ and the run exits non-zero: turn it into a regression test.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from .targets import TARGETS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _run(target: str, args: argparse.Namespace) -> tuple[int, str]:
    work = HERE / "work" / target
    work.mkdir(parents=True, exist_ok=True)
    crashes = HERE / "work" / "crashes"
    crashes.mkdir(parents=True, exist_ok=True)
    options = [
        f"-dict={HERE / 'zmtp.dict'}",
        f"-artifact_prefix={crashes}/{target}-",
        "-max_len=4096",
        "-print_final_stats=1",
    ]
    if args.runs:
        options.append(f"-runs={args.runs}")
    else:
        seconds = args.seconds if args.seconds else int(args.minutes * 60)
        options.append(f"-max_total_time={seconds}")
    command = [
        sys.executable,
        "-m",
        "fuzz.run",
        target,
        *options,
        str(work),
        str(HERE / "corpus" / target),
    ]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def _summary(output: str) -> str:
    runs = re.findall(r"stat::number_of_executed_units: (\d+)", output)
    speed = re.findall(r"stat::average_exec_per_sec:\s+(\d+)", output)
    cov = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)", output)
    parts = []
    if runs:
        parts.append(f"{int(runs[-1]):,} executions")
    if speed:
        parts.append(f"{int(speed[-1]):,}/s")
    if cov:
        c, f, n = cov[-1]
        parts.append(f"coverage: {c} edges, {f} features, corpus {n} inputs")
    return ", ".join(parts) or "no statistics (see the output above)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n")[0])
    parser.add_argument(
        "targets",
        nargs="*",
        choices=[*TARGETS, []],
        metavar="TARGET",
        help=f"what to fuzz (default: all of {', '.join(TARGETS)})",
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, default=1.0, help="per target (default 1)")
    length.add_argument("--seconds", type=int, help="per target")
    length.add_argument("--runs", type=int, help="executions per target")
    parser.add_argument("--verbose", action="store_true", help="show atheris's output")
    args = parser.parse_args(argv)
    status = 0
    for target in args.targets or list(TARGETS):
        code, output = _run(target, args)
        if args.verbose or code:
            print(output)
        verdict = "ok" if code == 0 else f"FAILED (exit {code}; inputs in fuzz/work/crashes/)"
        print(f"{target}: {_summary(output)}: {verdict}", flush=True)
        status = status or code
    return status


if __name__ == "__main__":
    raise SystemExit(main())
