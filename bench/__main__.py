"""``python -m bench``: measure zmtp and pyzmq (libzmq) side by side, in one run.

Examples::

    python -m bench                      # everything, 3 runs of each (a few minutes)
    python -m bench --quick              # tiny counts, 1 run, a subset (< 1 minute)
    python -m bench --only throughput/tcp --runs 5
    python -m bench --only 'proxy/*/16B' --json out.json
    python -m bench --only latency/tcp --profile prof/   # cProfile our processes
    python -m bench --cpu                # also CPU time and page faults per message
    python -m bench --report a.json b.json --markdown    # tables of saved runs, merged

Exit status: 0 when every measurement was made (whatever the figures), 1 when one
failed (the table shows ``error`` and stderr says why), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from ._proc import ROOT, BenchError
from ._report import Row, format_cpu_table, format_table, link, make_rows
from ._scenarios import CASES, Case, Settings, Variant

__all__ = ["machine_info", "main", "select_cases"]


def select_cases(cases: list[Case], patterns: list[str], *, quick: bool) -> list[Case]:
    """Cases whose id matches one of ``patterns`` (globs, or substrings without ``*?[``).

    With no pattern: every case, or the quick subset with ``quick``.
    """
    if not patterns:
        return [c for c in cases if c.in_quick] if quick else list(cases)
    chosen = []
    for case in cases:
        for pattern in patterns:
            glob = any(ch in pattern for ch in "*?[")
            if fnmatch.fnmatchcase(case.id, pattern) if glob else pattern in case.id:
                chosen.append(case)
                break
    return chosen


def machine_info() -> dict[str, Any]:
    """What RESULTS.md records about the machine and the software."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "unknown"
    try:
        import zmq  # noqa: PLC0415  (only to report its version)

        pyzmq, libzmq = zmq.__version__, zmq.zmq_version()
    except ImportError:
        pyzmq = libzmq = "not installed"
    try:
        import pyomq  # noqa: PLC0415  (only to report its version)

        omq = pyomq.pyomq_version()
    except ImportError:
        omq = "not installed"
    return {
        "commit": _commit(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "pyzmq": pyzmq,
        "libzmq": libzmq,
        "pyomq": omq,
        "loadavg": load,
        "command": shlex.join(["python", "-m", "bench", *sys.argv[1:]]),
    }


def _commit() -> str:
    """The commit measured, with ``+dirty`` if zmtp/ or proxy/ differ from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "zmtp", "proxy"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark zmtp against pyzmq/libzmq in one run (see bench/RESULTS.md).",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny counts, 1 run, a subset: a smoke test"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help="run the cases whose id matches (glob, or substring); repeatable, or "
        "comma-separated; --list shows the ids",
    )
    parser.add_argument("--runs", type=int, help="measurements of each variant (default 3)")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="also print the CPU time per message of each end (throughput cases)",
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every message count (default 1)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds allowed per measurement (default 120, or 30 with --quick, whose "
        "counts are tiny)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="run our processes under cProfile, writing DIR/<case>-<api>-<role>.prof",
    )
    parser.add_argument(
        "--pyzmq-copy",
        choices=["auto", "on", "off"],
        default="auto",
        help="pyzmq send/recv copy mode: auto (copy below 64 KiB, zero-copy from 64 KiB: "
        "its faster mode for each size), on, off",
    )
    parser.add_argument(
        "--py-spy",
        metavar="DIR",
        help="run our processes under 'py-spy record' (must be installed), writing raw "
        "stacks to DIR/<case>-<api>-<role>.txt; summarise with python -m bench.profile",
    )
    parser.add_argument(
        "--ours-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set an environment variable in our processes only (repeatable), e.g. "
        "MALLOC_MMAP_THRESHOLD_=268435456; recorded in the output",
    )
    parser.add_argument("--list", action="store_true", help="list the case ids and exit")
    parser.add_argument(
        "--report",
        metavar="FILE",
        nargs="+",
        help="measure nothing: print the tables of runs saved with --json (several files "
        "are merged: each variant's runs put together; --json writes the merge)",
    )
    return parser


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _summary(m: dict[str, float]) -> str:
    if "median_us" in m:
        return f"median {m['median_us']:.1f} us, p99 {m['p99_us']:.1f} us"
    if "rss_mib" in m:
        return f"{m['rss_per_conn_kib']:.1f} KiB per connection, {m['rss_mib']:.1f} MiB RSS"
    return f"{m['msgs_per_s']:,.0f} msg/s, {m['mb_per_s']:,.1f} MB/s"


def _copy_text(mode: str) -> str:
    if mode == "auto":
        return "True below 64 KiB, False from 64 KiB"
    return "True" if mode == "on" else "False"


def run_case(case: Case, settings: Settings) -> tuple[list[Row], dict[str, Any]]:
    """Measure every variant of ``case``, alternating them run by run."""
    variants = case.variants_for(settings)
    results: dict[Variant, list[dict[str, float]]] = {v: [] for v in variants}
    errors: dict[Variant, str] = {}
    for run in range(settings.runs):
        for variant in variants:
            if variant in errors:
                continue
            label = f"{case.id} {variant.label} run {run + 1}/{settings.runs}"
            try:
                try:
                    m = case.run(case, variant, settings)
                except BenchError as exc:
                    # One retry, said out loud: a measurement on a shared 2-core machine
                    # can stall for reasons outside the code measured (a libzmq-only
                    # pair was once seen stuck over ipc).  A second failure is final.
                    _progress(f"{label}: failed ({exc}); retrying once")
                    m = case.run(case, variant, settings)
            except BenchError as exc:
                errors[variant] = str(exc)
                _progress(f"{label}: FAILED: {exc}")
                continue
            results[variant].append(m)
            _progress(f"{label}: {_summary(m)}")
    record = {
        "id": case.id,
        "title": case.title(settings),
        "count": case.messages(settings),
        "variants": [
            {
                "impl": v.impl,
                "api": v.api,
                "tuned": v.tuned,
                "runs": results[v],
                "error": errors.get(v),
            }
            for v in variants
        ],
    }
    return make_rows(case, case.title(settings), results, errors), record


def _print_report(info: dict[str, Any], rows: list[Row], *, markdown: bool, cpu: bool) -> None:
    print(
        f"zmtp {info['commit']} vs pyzmq {info['pyzmq']} (libzmq {info['libzmq']}), "
        f"Python {info['python']}, "
        f"{info['nproc']} x {info['cpu']}, {info['date']}, load {info['loadavg']} -> "
        f"{info['loadavg_after']}; {info['runs']} run(s) each; medians, "
        f"vs best = ours / the better of libzmq and pyomq {info.get('pyomq', '?')}, "
        f"vs libzmq = ours / libzmq; ours with zmtp.Context() defaults, api +tuned with "
        f"Context(tune_allocator=True); pyzmq copy={_copy_text(info['pyzmq_copy'])}"
        + "".join(f"; ours with {k}={v}" for k, v in info.get("ours_env", {}).items())
    )
    if info.get("quick"):
        print(
            "SMOKE RUN (--quick): tiny counts and one run, to show every scenario runs; "
            "the numbers are not measurements and no target is judged"
        )
    for part in info.get("merged", []):
        print(
            f"  merged: zmtp {part['commit']}, {part['date']}, load {part['loadavg']} -> "
            f"{part['loadavg_after']}: {part['command']}"
        )
    link(rows)
    print(format_table(rows, markdown=markdown, judge=not info.get("quick")))
    if cpu:
        print()
        print(
            "CPU microseconds per message (medians; pyzmq's include libzmq's I/O thread), "
            "and the receiver's minor page faults per message:"
        )
        print(format_cpu_table(rows, markdown=markdown))


def _variant_key(record: dict[str, Any]) -> tuple[str, str, bool]:
    """A saved variant's identity; runs saved before the tuned variant have no "tuned"
    (they were measured with the Context defaults of their commit)."""
    return record["impl"], record["api"], bool(record.get("tuned", False))


def merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Put saved runs together: each variant's measurements concatenated, case by case.

    The machine record is the last run's, with ``merged`` listing every run's commit,
    date, load and command.
    """
    cases: dict[str, dict[str, Any]] = {}
    for data in runs:
        for record in data["cases"]:
            merged = cases.setdefault(
                record["id"], {**record, "variants": [], "count": record["count"]}
            )
            for v in record["variants"]:
                same = [m for m in merged["variants"] if _variant_key(m) == _variant_key(v)]
                if same:
                    same[0]["runs"] = same[0]["runs"] + v["runs"]
                    same[0]["error"] = same[0]["error"] or v["error"]
                else:
                    merged["variants"].append(dict(v))
    machine = dict(runs[-1]["machine"])
    if len(runs) > 1:
        machine["merged"] = [
            {
                k: d["machine"].get(k)
                for k in ("commit", "date", "loadavg", "loadavg_after", "command")
            }
            for d in runs
        ]
    return {"machine": machine, "cases": list(cases.values())}


def _report(paths: list[str], *, markdown: bool, cpu: bool, out: str | None) -> int:
    """Print the tables of runs saved with ``--json`` (merged if several)."""
    runs = []
    for path in paths:
        with open(path) as f:
            runs.append(json.load(f))
    data = merge(runs)
    by_id = {case.id: case for case in CASES}
    rows: list[Row] = []
    for record in data["cases"]:
        case = by_id.get(record["id"])
        if case is None:
            continue  # a case this version no longer has
        results: dict[Variant, list[dict[str, float]]] = {}
        errors: dict[Variant, str] = {}
        for v in record["variants"]:
            variant = Variant(*_variant_key(v))
            results[variant] = v["runs"]
            if v["error"]:
                errors[variant] = v["error"]
        rows += make_rows(case, record.get("title", case.scenario), results, errors)
    runs_each = max((len(v["runs"]) for r in data["cases"] for v in r["variants"]), default=0)
    info = {"pyzmq_copy": "auto", **data["machine"], "runs": runs_each}
    _print_report(info, rows, markdown=markdown, cpu=cpu)
    if out:
        with open(out, "w") as f:
            json.dump({**data, "rows": [r.as_json() for r in rows]}, f, indent=1)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.report:
        return _report(args.report, markdown=args.markdown, cpu=args.cpu, out=args.json)
    if args.list:
        for case in CASES:
            names = ", ".join(v.label for v in case.variants)
            print(f"{case.id:32} {names}{'  (quick)' if case.in_quick else ''}")
        return 0
    patterns = [p for item in args.only for p in item.split(",") if p]
    cases = select_cases(CASES, patterns, quick=args.quick)
    if not cases:
        parser.error(f"no case matches {patterns}; see --list")
    runs = args.runs if args.runs is not None else (1 if args.quick else 3)
    if runs < 1 or args.scale <= 0 or (args.timeout is not None and args.timeout <= 0):
        parser.error("--runs, --scale and --timeout must be positive")
    ours_env = {}
    for item in args.ours_env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--ours-env takes NAME=VALUE, not {item!r}")
        ours_env[name] = value
    for directory in (args.profile, args.py_spy):
        if directory:
            os.makedirs(directory, exist_ok=True)
    # SIGTERM unwinds like Ctrl-C, so that every worker process is killed on the way.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    info = machine_info()
    rows: list[Row] = []
    records = []
    with tempfile.TemporaryDirectory(prefix="zmtp-bench-") as tmpdir:
        settings = Settings(
            runs=runs,
            quick=args.quick,
            timeout=args.timeout or (30.0 if args.quick else 120.0),
            tmpdir=tmpdir,
            profile_dir=os.path.abspath(args.profile) if args.profile else None,
            pyspy_dir=os.path.abspath(args.py_spy) if args.py_spy else None,
            scale=args.scale,
            pyzmq_copy=args.pyzmq_copy,
            ours_env=ours_env,
        )
        for case in cases:
            case_rows, record = run_case(case, settings)
            rows += case_rows
            records.append(record)
    info["loadavg_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    info["runs"] = runs
    info["quick"] = args.quick
    info["pyzmq_copy"] = args.pyzmq_copy
    info["ours_env"] = ours_env
    _print_report(info, rows, markdown=args.markdown, cpu=args.cpu)
    failed = [r for r in records for v in r["variants"] if v["error"]]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "machine": info,
                    "cases": records,
                    # No verdicts from a smoke run's tiny counts (see format_table).
                    "rows": [
                        {**r.as_json(), "target": None} if args.quick else r.as_json() for r in rows
                    ],
                },
                f,
                indent=1,
            )
    if failed:
        print(f"{len(failed)} variant(s) failed; see stderr", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
