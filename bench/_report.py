"""From measurements to rows: medians, ranges, ratios, targets, and the table.

Each row compares one of our variants with the peers' measurements of the same case,
libzmq (pyzmq) and pyomq (omq.rs), whose cells are shared by the per-message and batch
rows of a case.  The ratios are ours / the best peer (the better median of the two) and
ours / libzmq, for every metric: above 1 is better for rates, below 1 for latencies and
memory.  Targets are those of issue 15 (:attr:`Row.targets`).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from ._scenarios import KIB, Case, Variant, size_label

__all__ = ["PEERS", "Row", "Target", "format_cpu_table", "format_table", "link", "make_rows"]


#: The implementations a row of ours is compared with, in table order.
PEERS = ("libzmq", "pyomq")
#: Metrics where lower is better (and the best peer is the lowest).
LOWER_IS_BETTER = {"median_us", "p99_us", "rss_per_conn_kib", "rss_mib"}


@dataclass(frozen=True)
class Target:
    """``ours / reference {op} x``.  ``against``: ``best`` (the best peer of the row),
    ``libzmq``, ``floor`` (the raw-trio ping-pong of the same run) or ``base`` (our
    own figure in the case's base configuration: 1 peer, 1 subscription)."""

    op: str
    x: float
    against: str = "best"


@dataclass
class Row:
    """One line of the table."""

    case: Case
    title: str
    variant: Variant
    metric: str  # key of the measurement: msgs_per_s, mb_per_s, median_us, p99_us, rss_*
    ours: list[float]
    #: Each peer's figures (``libzmq``, ``pyomq``), empty where it was not measured.
    peers: dict[str, list[float]]
    #: The other rate, for the "also" column (MB/s beside msg/s and the other way).
    also_metric: str | None
    also_ours: list[float]
    also_peers: dict[str, list[float]]
    error: str | None = None
    #: CPU µs per message: ``rx``/``tx``/``proxy`` x ``ours``/``libzmq``/``pyomq``.
    cpu: dict[str, list[float]] = field(default_factory=dict)
    #: Figures of other rows a target refers to: ``floor``, ``base`` (see :func:`link`).
    refs: dict[str, list[float]] = field(default_factory=dict)

    @property
    def scenario(self) -> str:
        if self.metric in ("median_us", "p99_us"):
            return f"{self.title} {'median' if self.metric == 'median_us' else 'p99'}"
        if self.metric == "rss_per_conn_kib":
            return f"{self.title}, per conn"
        if self.metric == "rss_mib":
            return f"{self.title}, process"
        return self.title

    @property
    def libzmq(self) -> list[float]:
        return self.peers.get("libzmq", [])

    @property
    def lower_is_better(self) -> bool:
        return self.metric in LOWER_IS_BETTER

    @property
    def best(self) -> str | None:
        """The peer with the best median (None if no peer was measured)."""
        measured = {k: statistics.median(v) for k, v in self.peers.items() if v}
        if not measured:
            return None
        pick = min if self.lower_is_better else max
        return pick(measured, key=measured.__getitem__)

    def ratio_to(self, against: str) -> float | None:
        """ours / the reference's median: a peer's, ``best``, ``floor`` or ``base``."""
        if against == "best":
            against = self.best or ""
        ref = self.refs.get(against) if against in ("floor", "base") else self.peers.get(against)
        if not self.ours or not ref:
            return None
        return statistics.median(self.ours) / statistics.median(ref)

    @property
    def ratio(self) -> float | None:
        """ours / the best peer's median."""
        return self.ratio_to("best")

    @property
    def targets(self) -> list[Target]:
        """Issue 15's targets for this row (issue 12's for CURVE; none for rows they
        set none for)."""
        kind, size, api = self.case.kind, self.case.size, self.variant.api
        if kind == "throughput" and self.case.transport != "inproc":
            return [Target(">=", 1.0 if api == "batch" or size >= 64 * KIB else 0.75)]
        if kind == "proxy":
            return [Target(">=", 1.0 if size >= 64 * KIB else 0.75)]
        if kind == "curve":
            # Issue 12's, against libzmq with CURVE: batch >= 1.0 at every size;
            # per message >= 0.5 at 16 B and >= 1.0 from 64 KiB (none set at 1 KiB).
            if api == "batch":
                return [Target(">=", 1.0, "libzmq")]
            if size == 16:
                return [Target(">=", 0.5, "libzmq")]
            return [Target(">=", 1.0, "libzmq")] if size >= 64 * KIB else []
        if kind in ("pubsub", "pubsub-zmqsubs"):
            return [Target(">=", 1.0 if api == "batch" else 0.5)]
        if kind == "latency" and self.metric == "median_us":
            # The floor (bench/_floor.py) ping-pongs over tcp only.
            floor = [Target("<=", 1.1, "floor")] if self.case.transport == "tcp" else []
            return [*floor, Target("<=", 1.0, "libzmq")]
        if kind == "latency" and self.metric == "p99_us":
            return [Target("<=", 1.5, "libzmq")]
        if kind in ("router", "xpub-match") and "base" in self.case.params:
            return [Target(">=", 0.8, "base")]
        if kind == "memory" and self.metric == "rss_per_conn_kib":
            return [Target("<=", 0.75, "libzmq")]
        return []

    @property
    def verdict(self) -> str:
        """Each target and whether it is met: ``>=1.0 ok``, ``<=1.0 libzmq MISS``,
        ``floor 1.05 <=1.1 ok``, ``base 0.93 >=0.8 ok``."""
        parts = []
        for t in self.targets:
            ratio = self.ratio_to(t.against)
            head = f"{t.op}{t.x:g}"
            if t.against == "libzmq":
                head += " libzmq"
            elif t.against in ("floor", "base"):
                shown = f"{ratio:.2f}" if ratio is not None else "-"
                head = f"{t.against} {shown} {head}"
            if ratio is None:
                parts.append(f"{head} ?")
                continue
            ok = ratio >= t.x if t.op == ">=" else ratio <= t.x
            parts.append(f"{head} {'ok' if ok else 'MISS'}")
        return "; ".join(parts)

    def as_json(self) -> dict[str, Any]:
        def med(values: list[float]) -> float | None:
            return statistics.median(values) if values else None

        return {
            "case": self.case.id,
            "scenario": self.scenario,
            "transport": self.case.transport,
            "size": self.case.size,
            "api": self.variant.api,
            "tuned": self.variant.tuned,
            "metric": self.metric,
            "ours": self.ours,
            "libzmq": self.libzmq,
            "peers": self.peers,
            "ours_median": med(self.ours),
            "libzmq_median": med(self.libzmq),
            "peer_medians": {k: med(v) for k, v in self.peers.items()},
            "best": self.best,
            "ratio": self.ratio,
            "ratio_libzmq": self.ratio_to("libzmq"),
            "refs": self.refs,
            "target": self.verdict or None,
            "also_metric": self.also_metric,
            "also_ours": self.also_ours,
            "also_peers": self.also_peers,
            "cpu_us_per_msg": self.cpu,
            "error": self.error,
        }


def _metrics(case: Case) -> list[str]:
    if case.run.__name__ == "_latency":
        return ["median_us", "p99_us"]
    if case.run.__name__ == "_memory":
        return ["rss_per_conn_kib", "rss_mib"]
    return [_rate_metric(case)]


def make_rows(
    case: Case,
    title: str,
    results: dict[Variant, list[dict[str, float]]],
    errors: dict[Variant, str],
) -> list[Row]:
    """The rows of one case: each of our variants against every peer's (and the
    floor's trio variant, the floor cases' "ours", against libzmq)."""
    peers = {v.impl: v for v in case.variants if v.impl in PEERS}
    rows: list[Row] = []

    def pick(v: Variant | None, key: str | None) -> list[float]:
        if v is None or key is None:
            return []
        return [m[key] for m in results.get(v, []) if key in m]

    for variant in case.variants:
        if variant.impl in PEERS:
            continue
        for metric in _metrics(case):
            also = _other(metric)
            err = errors.get(variant) or next(
                (errors[v] for v in peers.values() if v in errors), None
            )
            cpu = {
                f"{end} {who}": pick(v, f"{end}_cpu_us")
                for end in ("rx", "tx", "proxy")
                for who, v in (("ours", variant), *peers.items())
            }
            cpu["rx faults ours"] = pick(variant, "rx_faults_per_msg")
            for name, v in peers.items():
                cpu[f"rx faults {name}"] = pick(v, "rx_faults_per_msg")
            rows.append(
                Row(
                    case,
                    title,
                    variant,
                    metric,
                    pick(variant, metric),
                    {name: pick(v, metric) for name, v in peers.items()},
                    also,
                    pick(variant, also),
                    {name: pick(v, also) for name, v in peers.items()},
                    err,
                    cpu,
                )
            )
    return rows


_FLOOR = "floor/pingpong/64B"


def link(rows: list[Row]) -> None:
    """Fill each row's ``refs`` from the other rows of the same run: the raw-trio
    ping-pong floor for the latency medians, our own figure in the case's base
    configuration (``params["base"]``) for the many-peers and many-topics rows."""
    by_key = {(r.case.id, r.variant, r.metric): r for r in rows}
    for row in rows:
        if row.case.kind == "latency" and row.metric == "median_us":
            floor = [
                r for r in rows if r.case.id == "floor/pingpong/64B" and r.metric == "median_us"
            ]
            if floor and floor[0].ours:
                row.refs["floor"] = floor[0].ours
        base = row.case.params.get("base")
        if base:
            ref = by_key.get((base, row.variant, row.metric))
            if ref is not None and ref.ours:
                row.refs["base"] = ref.ours


def _rate_metric(case: Case) -> str:
    return "mb_per_s" if case.size >= 64 * KIB else "msgs_per_s"


def _other(metric: str) -> str | None:
    if metric in LOWER_IS_BETTER:
        return None
    return "msgs_per_s" if metric == "mb_per_s" else "mb_per_s"


_UNITS = {
    "msgs_per_s": "msg/s", "mb_per_s": "MB/s", "median_us": "us", "p99_us": "us",
    "rss_per_conn_kib": "KiB", "rss_mib": "MiB",
}  # fmt: skip


def _num(x: float) -> str:
    """About three significant figures, with k and M for large numbers."""
    ax = abs(x)
    if ax >= 1e6:
        return f"{x / 1e6:.3g}M"
    if ax >= 1e4:
        return f"{x / 1e3:.3g}k"
    if ax >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}"


def _cell(values: list[float], metric: str) -> tuple[str, str]:
    if not values:
        return ("-", "")
    unit = _UNITS[metric]
    med = f"{_num(statistics.median(values))} {unit}"
    rng = f"{_num(min(values))}-{_num(max(values))}" if len(values) > 1 else ""
    return med, rng


HEADERS = [
    "scenario", "transport", "size", "api",
    "ours", "ours min-max", "libzmq", "pyomq",
    "vs best", "vs libzmq", "target", "also (ours / best)",
]  # fmt: skip


def row_cells(row: Row, *, judge: bool = True) -> list[str]:
    """The table cells of one row (with ``judge=False``, no verdict on the target)."""
    ours, ours_rng = _cell(row.ours, row.metric)
    peers = [_cell(row.peers.get(name, []), row.metric)[0] for name in PEERS]
    if row.case.transport == "inproc":
        peers = ["n/a" for _ in PEERS]
    best, lz = row.ratio, row.ratio_to("libzmq")
    ratio = f"{best:.2f} {row.best}" if best is not None else "-"
    also = ""
    if row.also_metric and row.also_ours:
        text = _num(statistics.median(row.also_ours))
        other = row.also_peers.get(row.best or "", [])
        if other:
            text += " / " + _num(statistics.median(other))
        also = f"{text} {_UNITS[row.also_metric]}"
    if row.error and not row.ours:
        ours = "error"
    return [
        row.scenario, row.case.transport, size_label(row.case.size), row.variant.api_label,
        ours, ours_rng, *peers, ratio, f"{lz:.2f}" if lz is not None else "-",
        (row.verdict or "") if judge else "-", also,
    ]  # fmt: skip


def format_table(rows: list[Row], *, markdown: bool = False, judge: bool = True) -> str:
    """A plain-text (or Markdown) table of the rows.

    ``vs best`` is ours / the better of libzmq and pyomq (named), ``vs libzmq`` ours /
    libzmq; above 1 is better for rates, below 1 for latencies and memory.
    ``judge=False`` (a ``--quick`` smoke run) leaves the target column without
    verdicts: counts that small measure start-up, not throughput, so an ok or a MISS
    there would mean nothing.
    """
    body = [row_cells(r, judge=judge) for r in rows]
    return _layout(HEADERS, body, right={4, 5, 6, 7, 8, 9}, markdown=markdown)


CPU_HEADERS = [
    "scenario", "transport", "size", "api",
    "rx ours", "rx libzmq", "rx pyomq", "tx ours", "tx libzmq", "tx pyomq",
    "proxy ours", "proxy libzmq", "proxy pyomq",
    "rx faults ours", "rx faults libzmq", "rx faults pyomq",
]  # fmt: skip


def format_cpu_table(rows: list[Row], *, markdown: bool = False) -> str:
    """CPU µs per message of the receiving (rx) and sending (tx) processes, and of
    the proxy process, medians.

    The receiver's is measured over the timed window, the sender's over its whole
    send (and flush), the proxy's from its start to the last delivery; pyzmq's and
    pyomq's include their I/O threads.  Over inproc both ends are one process, shown
    as rx.  The last columns are the receiver's minor page faults per message (pages
    of fresh memory touched).
    """
    body = []
    for row in rows:
        if not any(row.cpu.values()):
            continue
        api = row.variant.api_label
        cells = [row.scenario, row.case.transport, size_label(row.case.size), api]
        for key in CPU_HEADERS[4:]:
            values = row.cpu.get(key, [])
            cells.append(f"{statistics.median(values):.2f}" if values else "-")
        body.append(cells)
    if not body:
        return "(no CPU figures: the latency cases report none)"
    return _layout(CPU_HEADERS, body, right=set(range(4, len(CPU_HEADERS))), markdown=markdown)


def _layout(headers: list[str], body: list[list[str]], *, right: set[int], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(c or " " for c in cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(c[i]) for c in body)) for i, h in enumerate(headers)]

    def fmt(cells: list[str]) -> str:
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    lines = [fmt(headers), "  ".join("-" * w for w in widths)]
    lines += [fmt(cells) for cells in body]
    return "\n".join(lines)
