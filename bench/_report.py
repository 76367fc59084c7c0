"""From measurements to rows: medians, ranges, ratios, targets, and the table.

Each row compares one of our variants with libzmq's measurement of the same case (the
libzmq cell is shared by the per-message and batch rows of a case).  The ratio is
ours / libzmq of the medians, for every metric: above 1 is better for rates, below 1
is better for latencies.  Targets are those of issue 6.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from ._scenarios import KIB, Case, Variant, size_label

__all__ = ["Row", "format_cpu_table", "format_table", "make_rows"]


@dataclass
class Row:
    """One line of the table."""

    case: Case
    title: str
    variant: Variant
    metric: str  # key of the measurement: msgs_per_s, mb_per_s, median_us, p99_us
    ours: list[float]
    libzmq: list[float]
    #: The other rate, for the "also" column (MB/s beside msg/s and the other way).
    also_metric: str | None
    also_ours: list[float]
    also_libzmq: list[float]
    error: str | None = None
    #: CPU µs per message: ``rx``/``tx`` (receiver, sender) x ``ours``/``libzmq``.
    cpu: dict[str, list[float]] = field(default_factory=dict)

    @property
    def scenario(self) -> str:
        if self.metric in ("median_us", "p99_us"):
            return f"{self.title} {'median' if self.metric == 'median_us' else 'p99'}"
        return self.title

    @property
    def ratio(self) -> float | None:
        if not self.ours or not self.libzmq:
            return None
        return statistics.median(self.ours) / statistics.median(self.libzmq)

    @property
    def target(self) -> tuple[str, float] | None:
        """``(">=", x)`` or ``("<=", x)`` from issue 6, or None."""
        kind, size, api = self.case.id.split("/")[0], self.case.size, self.variant.api
        if kind == "throughput" and self.case.transport != "inproc":
            if size >= 64 * KIB:
                return (">=", 1.0)
            return (">=", 1.0 if api == "batch" else 0.5)
        if kind == "proxy":
            return (">=", 1.0 if size >= 64 * KIB else 0.5)
        if kind == "latency" and self.metric == "median_us":
            return ("<=", 1.5)
        return None

    @property
    def verdict(self) -> str:
        target, ratio = self.target, self.ratio
        if target is None:
            return ""
        op, x = target
        if ratio is None:
            return f"{op}{x:.1f} ?"
        ok = ratio >= x if op == ">=" else ratio <= x
        return f"{op}{x:.1f} {'ok' if ok else 'MISS'}"

    def as_json(self) -> dict[str, Any]:
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
            "ours_median": statistics.median(self.ours) if self.ours else None,
            "libzmq_median": statistics.median(self.libzmq) if self.libzmq else None,
            "ratio": self.ratio,
            "target": self.verdict or None,
            "also_metric": self.also_metric,
            "also_ours": self.also_ours,
            "also_libzmq": self.also_libzmq,
            "cpu_us_per_msg": self.cpu,
            "error": self.error,
        }


def make_rows(
    case: Case,
    title: str,
    results: dict[Variant, list[dict[str, float]]],
    errors: dict[Variant, str],
) -> list[Row]:
    """The rows of one case: each of our variants against libzmq's."""
    libzmq = next((v for v in case.variants if v.impl == "libzmq"), None)
    rows: list[Row] = []
    latency = case.run.__name__ == "_latency"
    for variant in case.variants:
        if variant is libzmq:
            continue
        metrics = ["median_us", "p99_us"] if latency else [_rate_metric(case)]
        for metric in metrics:
            also = None if latency else _other(metric)

            def pick(v: Variant | None, key: str | None) -> list[float]:
                if v is None or key is None:
                    return []
                return [m[key] for m in results.get(v, []) if key in m]

            err = errors.get(variant) or (errors.get(libzmq) if libzmq else None)
            rows.append(
                Row(
                    case,
                    title,
                    variant,
                    metric,
                    pick(variant, metric),
                    pick(libzmq, metric),
                    also,
                    pick(variant, also),
                    pick(libzmq, also),
                    err,
                    {
                        **{
                            f"{end} {who}": pick(v, f"{end}_cpu_us")
                            for end in ("rx", "tx", "proxy")
                            for who, v in (("ours", variant), ("libzmq", libzmq))
                        },
                        "rx faults ours": pick(variant, "rx_faults_per_msg"),
                        "rx faults libzmq": pick(libzmq, "rx_faults_per_msg"),
                    },
                )
            )
    return rows


def _rate_metric(case: Case) -> str:
    return "mb_per_s" if case.size >= 64 * KIB else "msgs_per_s"


def _other(metric: str) -> str:
    return "msgs_per_s" if metric == "mb_per_s" else "mb_per_s"


_UNITS = {"msgs_per_s": "msg/s", "mb_per_s": "MB/s", "median_us": "us", "p99_us": "us"}


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
    "ours", "ours min-max", "libzmq", "libzmq min-max",
    "ratio", "target", "also (ours / libzmq)",
]  # fmt: skip


def row_cells(row: Row, *, judge: bool = True) -> list[str]:
    """The table cells of one row (with ``judge=False``, no verdict on the target)."""
    ours, ours_rng = _cell(row.ours, row.metric)
    lib, lib_rng = _cell(row.libzmq, row.metric)
    if row.case.transport == "inproc":
        lib = "n/a"
    ratio = f"{row.ratio:.2f}" if row.ratio is not None else "-"
    also = ""
    if row.also_metric and row.also_ours:
        o = statistics.median(row.also_ours)
        text = _num(o)
        if row.also_libzmq:
            text += " / " + _num(statistics.median(row.also_libzmq))
        also = f"{text} {_UNITS[row.also_metric]}"
    if row.error and not row.ours:
        ours = "error"
    return [
        row.scenario, row.case.transport, size_label(row.case.size), row.variant.api_label,
        ours, ours_rng, lib, lib_rng, ratio, row.verdict if judge else "-", also,
    ]  # fmt: skip


def format_table(rows: list[Row], *, markdown: bool = False, judge: bool = True) -> str:
    """A plain-text (or Markdown) table of the rows.

    ``judge=False`` (a ``--quick`` smoke run) leaves the target column without
    verdicts: counts that small measure start-up, not throughput, so an ok or a MISS
    there would mean nothing.
    """
    body = [row_cells(r, judge=judge) for r in rows]
    return _layout(HEADERS, body, right={4, 5, 6, 7, 8}, markdown=markdown)


CPU_HEADERS = [
    "scenario", "transport", "size", "api",
    "rx ours", "rx libzmq", "tx ours", "tx libzmq", "proxy ours", "proxy libzmq",
    "rx faults ours", "rx faults libzmq",
]  # fmt: skip


def format_cpu_table(rows: list[Row], *, markdown: bool = False) -> str:
    """CPU µs per message of the receiving (rx) and sending (tx) processes, and of
    the proxy process, medians.

    The receiver's is measured over the timed window, the sender's over its whole
    send (and flush), the proxy's from its start to the last delivery; pyzmq's
    include libzmq's I/O thread.  Over inproc both ends are one process, shown as rx.
    The last two columns are the receiver's minor page faults per message (pages of
    fresh memory touched).
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
    return _layout(CPU_HEADERS, body, right=set(range(4, 12)), markdown=markdown)


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
