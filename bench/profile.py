"""Summarise profiles written by ``python -m bench --profile DIR`` or ``--py-spy DIR``.

``python -m bench.profile FILE... [--top N] [--messages N]``

* ``.prof`` files (cProfile): the functions with the most own time, their calls, own
  and cumulative time, and, with ``--messages``, own time per message in µs.
* ``.txt`` files (``py-spy record --format raw``): the functions with the most
  samples of their own (the leaf of the stack) and in total (anywhere on the stack).

Both also give the share of time per *area* (trio's scheduler and I/O, our framing,
sockets, engine, proxy, the benchmark loop itself, system calls), which is the short
answer to "where does the time go".
"""

from __future__ import annotations

import argparse
import pstats
import re
import sys
from collections import Counter
from collections.abc import Sequence

__all__ = ["area", "main"]

#: (pattern on a file path or function label, area), first match wins.
_AREAS = [
    (r"_io_epoll|wait_readable|wait_writable|epoll", "trio: I/O wait (epoll)"),
    (r"trio/_core/(_run|_parking_lot|_ki|_traps)", "trio: scheduler"),
    (r"trio/_socket|trio/_highlevel_socket|trio/_unix_pipes", "trio: socket wrappers"),
    (r"trio/", "trio: other"),
    (r"zmtp/framing", "zmtp: framing"),
    (r"zmtp/connection|zmtp/commands|zmtp/events", "zmtp: connection"),
    (r"zmtp/sockets/_engine", "zmtp: engine"),
    (r"zmtp/sockets/_pubsub|zmtp/subscriptions", "zmtp: pub/sub"),
    (r"zmtp/sockets", "zmtp: socket layer"),
    (r"zmtp/", "zmtp: other"),
    (r"proxy/", "proxy"),
    (r"bench/", "benchmark loop"),
    (r"'(send|recv|recv_into|sendmsg|write|read|writev)'|os\.(read|write|writev)|"
     r"\b(send|recv|read|write|writev|sendmsg)\b", "system calls"),
    (r"<built-in>|\{built-in|\{method", "builtins"),
]  # fmt: skip


def area(label: str) -> str:
    """The area of a function label (cProfile's or py-spy's)."""
    for pattern, name in _AREAS:
        if re.search(pattern, label):
            return name
    return "other"


def _cprofile(path: str, top: int, messages: int | None) -> None:
    stats = pstats.Stats(path)
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1e-9
    rows = []
    areas: dict[str, float] = {}
    for (file, line, name), (_cc, ncalls, tottime, cumtime, _callers) in raw.items():
        label = f"{name} ({file}:{line})" if file != "~" else name
        rows.append((tottime, ncalls, cumtime, label))
        areas[area(label)] = areas.get(area(label), 0.0) + tottime
    rows.sort(reverse=True)
    print(f"== {path}: {total:.3f} s of own time (cProfile; its overhead inflates calls)")
    per = " own us/msg" if messages else ""
    print(f"  {'own %':>6} {'own s':>7} {'cum s':>7} {'calls':>9}{per}  function")
    for tottime, ncalls, cumtime, label in rows[:top]:
        extra = f" {tottime / messages * 1e6:11.2f}" if messages else ""
        print(
            f"  {tottime / total:6.1%} {tottime:7.3f} {cumtime:7.3f} {ncalls:9d}{extra}  "
            f"{_short(label)}"
        )
    _print_areas(areas, total)


def _pyspy(path: str, top: int, under: str) -> None:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: dict[str, float] = {}
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [fr for fr in stack.split(";") if fr]
            # py-spy starts with the process/thread; the leaf is last.
            frames = [fr for fr in frames if "(" in fr] or frames
            if under and not any(under in fr for fr in frames):
                continue  # start-up (imports) and shutdown, outside the event loop
            total += count
            own[frames[-1]] += count
            areas[area(frames[-1])] = areas.get(area(frames[-1]), 0.0) + count
            for fr in set(frames):
                inclusive[fr] += count
    scope = f" under {under!r}" if under else ""
    print(f"== {path}: {total} samples{scope} (py-spy)")
    print("  own (leaf) samples:")
    for label, n in own.most_common(top):
        print(f"  {n / max(total, 1):6.1%}  {_short(label)}")
    print("  inclusive samples (leaving out the trunk every stack shares):")
    trunk = {label for label, n in inclusive.items() if n >= 0.95 * total}
    for label, n in [(lb, n) for lb, n in inclusive.most_common() if lb not in trunk][:top]:
        print(f"  {n / max(total, 1):6.1%}  {_short(label)}")
    _print_areas(areas, total)


def _print_areas(areas: dict[str, float], total: float) -> None:
    print("  by area (own time):")
    for name, t in sorted(areas.items(), key=lambda kv: -kv[1]):
        print(f"  {t / (total or 1):6.1%}  {name}")


def _short(label: str) -> str:
    """Shorten absolute paths to what follows site-packages or the repository root."""
    label = re.sub(r"\S*site-packages/", "", label)
    return re.sub(r"/\S*?/((?:zmtp|proxy|bench|trio)/)", r"\1", label)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("files", nargs="+", help=".prof (cProfile) or .txt (py-spy raw)")
    parser.add_argument("--top", type=int, default=15, help="functions listed (default 15)")
    parser.add_argument("--messages", type=int, help="messages handled, for µs per message")
    parser.add_argument(
        "--under",
        default="unrolled_run",
        help="py-spy: count only stacks with a frame containing this (default: trio's "
        "run loop, leaving out imports and start-up); '' counts everything",
    )
    args = parser.parse_args(argv)
    for path in args.files:
        if path.endswith(".prof"):
            _cprofile(path, args.top, args.messages)
        else:
            _pyspy(path, args.top, args.under)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
