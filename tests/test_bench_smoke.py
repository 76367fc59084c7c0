"""``python -m bench --quick`` runs end to end and prints every expected row.

A smoke test of the benchmark suite: it proves that every scenario can be set up and
measured (ours and libzmq), never how fast anything is.  The suite starts its own
processes (PUSH/PULL, REQ/REP, both proxies, PUB and SUBs) on 127.0.0.1 and ipc.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.interop

#: (scenario, transport, size, api) of every row ``--quick`` prints.
EXPECTED = [
    ("push-pull", "tcp", "16 B", "msg"),
    ("push-pull", "tcp", "16 B", "batch"),
    ("push-pull", "tcp", "64 KiB", "msg"),
    ("push-pull", "tcp", "64 KiB", "batch"),
    ("push-pull", "ipc", "16 B", "msg"),
    ("push-pull", "ipc", "16 B", "batch"),
    ("push-pull", "inproc", "16 B", "msg"),
    ("push-pull", "inproc", "16 B", "batch"),
    ("push-pull", "inproc", "64 KiB", "msg"),
    ("push-pull", "inproc", "64 KiB", "batch"),
    ("req-rep latency median", "tcp", "64 B", "msg"),
    ("req-rep latency p99", "tcp", "64 B", "msg"),
    ("proxy pull-push", "tcp", "16 B", "proxy"),
    ("proxy router-dealer", "tcp", "16 B", "proxy"),
    ("proxy processes router-dealer", "tcp", "16 B", "1proc"),
    ("proxy processes router-dealer", "tcp", "16 B", "2procs"),
    ("pub-sub 1->3", "tcp", "16 B", "msg"),
    ("pub-sub 1->3", "tcp", "16 B", "batch"),
]


def test_quick_run_prints_every_row(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    # The timeout only guards against a hang; nothing here depends on speed.
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    # Labelled a smoke run, with no verdict from counts this small.
    assert any(line.startswith("SMOKE RUN (--quick)") for line in lines), proc.stdout
    assert " MISS" not in proc.stdout and " ok" not in proc.stdout, proc.stdout
    header = next(i for i, line in enumerate(lines) if line.startswith("scenario"))
    assert "ratio" in lines[header] and "libzmq" in lines[header]
    table = lines[header + 2 :]
    for scenario, transport, size, api in EXPECTED:
        matching = [
            line
            for line in table
            if line.startswith(scenario + " ")
            and f" {transport} " in line
            and f" {size} " in line
            and f" {api} " in line
        ]
        assert len(matching) == 1, (scenario, transport, size, api, proc.stdout)
        assert " error " not in matching[0]
    assert len(table) == len(EXPECTED)

    data = json.loads(out.read_text())
    rows = data["rows"]
    assert [(r["scenario"], r["transport"], r["api"]) for r in rows] == [
        (s, t, a) for s, t, _, a in EXPECTED
    ]
    for row in rows:
        assert row["error"] is None
        assert row["target"] is None
        assert len(row["ours"]) == 1 and row["ours"][0] > 0
        if row["transport"] == "inproc":
            assert row["libzmq"] == [] and row["ratio"] is None
        else:
            assert len(row["libzmq"]) == 1 and row["libzmq"][0] > 0
            assert row["ratio"] is not None and row["ratio"] > 0
    assert data["machine"]["libzmq"] and data["machine"]["pyzmq"]


def test_large_messages_measured_with_and_without_malloc_tuning(tmp_path: Path) -> None:
    # The 1 MiB rows show the library both ways: as zmtp.Context() leaves malloc, and
    # with Context(tune_allocator=True); each receiver reports whether it ended tuned.
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "throughput/tcp/1MiB",
         "--json", str(out)],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "ZMTP_NATIVE"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    data = json.loads(out.read_text())
    assert [(r["api"], r["tuned"]) for r in data["rows"]] == [
        ("msg", False), ("batch", False), ("msg", True), ("batch", True),
    ]  # fmt: skip
    for line in ("msg+tuned", "batch+tuned"):
        assert any(f" {line} " in row for row in proc.stdout.splitlines())
    (case,) = data["cases"]
    tuned = {(v["api"], v["tuned"]): v["runs"][0].get("rx_malloc_tuned") for v in case["variants"]}
    glibc = float(platform.libc_ver()[0] == "glibc")  # elsewhere tuning does nothing
    assert tuned == {
        ("msg", False): 0.0, ("batch", False): 0.0,
        ("msg", True): glibc, ("batch", True): glibc,
        ("-", False): None,
    }  # fmt: skip


def test_report_reprints_the_committed_results() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--report", "bench/results.json", "--markdown", "--cpu"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads((ROOT / "bench" / "results.json").read_text())
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    # Both tables: header rows, then one row per result row (CPU rows for rates only).
    assert len(table) > len(data["rows"])
    for row in data["rows"]:
        assert any(
            line.startswith(f"| {row['scenario']} | {row['transport']} |") for line in table
        ), row["scenario"]


def test_list_names_every_case_and_marks_the_quick_ones() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    ids = [line.split()[0] for line in proc.stdout.splitlines()]
    assert "throughput/tcp/16B" in ids and "pubsub/tcp/16B" in ids
    assert "proxy/router-dealer/64KiB" in ids and "floor/pingpong/64B" in ids
    quick = [line.split()[0] for line in proc.stdout.splitlines() if "(quick)" in line]
    assert quick == [
        "throughput/tcp/16B",
        "throughput/tcp/64KiB",
        "throughput/ipc/16B",
        "throughput/inproc/16B",
        "throughput/inproc/64KiB",
        "latency/tcp/64B",
        "proxy/pull-push/16B",
        "proxy/router-dealer/16B",
        "proxy-scale/router-dealer/16B",
        "pubsub/tcp/16B",
    ]
