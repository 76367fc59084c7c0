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

from bench._report import Row, link, make_rows
from bench._scenarios import CASES, Variant

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
    ("CURVE push-pull", "tcp", "16 B", "msg"),
    ("CURVE push-pull", "tcp", "16 B", "batch"),
    ("req-rep latency median", "tcp", "64 B", "msg"),
    ("req-rep latency p99", "tcp", "64 B", "msg"),
    ("proxy pull-push", "tcp", "16 B", "proxy"),
    ("proxy router-dealer", "tcp", "16 B", "proxy"),
    ("forwarder xsub-xpub 2->2", "tcp", "16 B", "proxy"),
    ("proxy processes router-dealer", "tcp", "16 B", "1proc"),
    ("proxy processes router-dealer", "tcp", "16 B", "2procs"),
    ("pub-sub 1->3", "tcp", "16 B", "msg"),
    ("pub-sub 1->3", "tcp", "16 B", "batch"),
    ("pub alone 1->3 (libzmq subs)", "tcp", "16 B", "msg"),
    ("pub alone 1->3 (libzmq subs)", "tcp", "16 B", "batch"),
    ("router 10 peers", "tcp", "16 B", "msg"),
    ("router 10 peers", "tcp", "16 B", "batch"),
    ("pub matching 1000 subs", "tcp", "16 B", "msg"),
    ("pub matching 1000 subs", "tcp", "16 B", "batch"),
    ("memory 100 idle conns, per conn", "tcp", "-", "-"),
    ("memory 100 idle conns, process", "tcp", "-", "-"),
]

#: Rows where --quick measures pyomq too (elsewhere only libzmq): each pyomq role once.
WITH_PYOMQ = {
    "push-pull tcp 16 B",
    "CURVE push-pull tcp 16 B",
    "req-rep latency median tcp 64 B",
    "req-rep latency p99 tcp 64 B",
    "forwarder xsub-xpub 2->2 tcp 16 B",
    "pub alone 1->3 (libzmq subs) tcp 16 B",
    "router 10 peers tcp 16 B",
    "pub matching 1000 subs tcp 16 B",
    "memory 100 idle conns, per conn tcp -",
    "memory 100 idle conns, process tcp -",
}


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
    for column in ("vs best", "vs libzmq", "libzmq", "pyomq", "target"):
        assert column in lines[header], lines[header]
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
    for row, (scenario, transport, size, _) in zip(rows, EXPECTED, strict=True):
        assert row["error"] is None
        assert row["target"] is None
        assert len(row["ours"]) == 1 and row["ours"][0] > 0
        if row["transport"] == "inproc":
            assert row["libzmq"] == [] and row["ratio"] is None
            continue
        assert len(row["libzmq"]) == 1 and row["libzmq"][0] > 0
        assert row["ratio"] is not None and row["ratio"] > 0
        assert row["ratio_libzmq"] is not None and row["ratio_libzmq"] > 0
        pyomq = row["peers"].get("pyomq", [])
        if f"{scenario} {transport} {size}" in WITH_PYOMQ:
            assert len(pyomq) == 1 and pyomq[0] > 0, row
            assert row["best"] in ("libzmq", "pyomq")
        else:
            assert pyomq == [], row
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
        ("-", False): None,  # libzmq and pyomq (one key: same api, same tuned)
    }  # fmt: skip


@pytest.mark.parametrize("saved", ["results.json", "results-issue15.json"])
def test_report_reprints_the_committed_results(saved: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--report", f"bench/{saved}", "--markdown", "--cpu"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads((ROOT / "bench" / saved).read_text())
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
        "curve/tcp/16B",
        "latency/tcp/64B",
        "proxy/pull-push/16B",
        "proxy/router-dealer/16B",
        "proxy/xsub-xpub/16B",
        "proxy-scale/router-dealer/16B",
        "pubsub/tcp/16B",
        "pubsub-zmqsubs/tcp/16B",
        "router/tcp/10peers",
        "xpub-match/tcp/1000subs",
        "memory/tcp/1000conns",
    ]
    # Every new kind of case of issue 15 is listed, with pyomq beside libzmq.
    for case in (
        "proxy/xsub-xpub/64KiB", "router/tcp/1peers", "router/tcp/1000peers",
        "xpub-match/tcp/1subs", "xpub-match/tcp/100000subs", "pubsub-zmqsubs/tcp/16B",
    ):  # fmt: skip
        assert case in ids, case
    line = next(line for line in proc.stdout.splitlines() if line.startswith("router/tcp/1peers"))
    assert "libzmq" in line and "pyomq" in line


def test_targets_are_judged_against_the_best_peer_and_other_rows() -> None:
    # No process is started: rows built from made-up figures, judged as the report does.

    by_id = {case.id: case for case in CASES}
    ours, lz, omq = Variant("ours", "msg"), Variant("libzmq", "-"), Variant("pyomq", "-")

    def rows(case_id: str, figures: dict[Variant, dict[str, float]]) -> list[Row]:
        case = by_id[case_id]
        return make_rows(case, case.scenario, {v: [m] for v, m in figures.items()}, {})

    rate = "msgs_per_s"
    tput = rows("throughput/tcp/16B", {ours: {rate: 80.0}, lz: {rate: 100.0}, omq: {rate: 90.0}})
    assert tput[0].best == "libzmq" and tput[0].ratio == 0.8
    assert tput[0].verdict == ">=0.75 ok"
    latency = rows(
        "latency/tcp/64B",
        {
            ours: {"median_us": 60.0, "p99_us": 100.0},
            lz: {"median_us": 50.0, "p99_us": 80.0},
            omq: {"median_us": 40.0, "p99_us": 200.0},
        },
    )
    floor = rows(
        "floor/pingpong/64B", {Variant("trio", "raw"): {"median_us": 57.0, "p99_us": 90.0}}
    )
    base = rows("router/tcp/1peers", {ours: {rate: 100.0}})
    many = rows("router/tcp/1000peers", {ours: {rate: 85.0}, lz: {rate: 50.0}})
    link([*tput, *latency, *floor, *base, *many])
    median, p99 = latency[0], latency[1]
    assert median.best == "pyomq" and p99.best == "libzmq"
    assert median.verdict == "floor 1.05 <=1.1 ok; <=1 libzmq MISS"
    assert p99.verdict == "<=1.5 libzmq ok"  # 100 against 80
    assert many[0].verdict == "base 0.85 >=0.8 ok"
    memory = rows(
        "memory/tcp/1000conns",
        {
            Variant("ours", "-"): {"rss_per_conn_kib": 20.0, "rss_mib": 30.0},
            lz: {"rss_per_conn_kib": 30.0, "rss_mib": 20.0},
            omq: {"rss_per_conn_kib": 32.0, "rss_mib": 31.0},
        },
    )
    assert memory[0].best == "libzmq" and memory[0].verdict == "<=0.75 libzmq ok"
