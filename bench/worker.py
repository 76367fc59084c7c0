"""One benchmark process: ``python -m bench.worker IMPL.ROLE JSON``.

``IMPL`` is ``ours`` (zmtp on trio, :mod:`bench._ours`), ``zmq`` (pyzmq/libzmq,
:mod:`bench._libzmq`), ``omq`` (pyomq, the same roles with ``import pyomq as zmq``) or
``trio`` (plain trio, no ZMTP: the floor, :mod:`bench._floor`);
``JSON`` holds the role's parameters.  With ``"profile": PATH``
in the parameters the role runs under cProfile and the statistics are written to PATH.
The driver (:mod:`bench._scenarios`) starts workers and reads what they print
(:mod:`bench._protocol`).
"""

from __future__ import annotations

import cProfile
import importlib
import json
import sys
from collections.abc import Sequence

__all__ = ["main"]

_MODULES = {
    "ours": "bench._ours",
    "zmq": "bench._libzmq",
    "omq": "bench._libzmq",
    "trio": "bench._floor",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the role named on the command line; return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or "." not in args[0]:
        print("usage: python -m bench.worker IMPL.ROLE JSON", file=sys.stderr)
        return 2
    impl, role = args[0].split(".", 1)
    params = json.loads(args[1])
    # Imported here, by name, so that a pyzmq worker never imports trio and zmtp (and
    # the other way round): each process starts as light as it can.
    module = importlib.import_module(_MODULES[impl])
    if impl == "omq":
        module.use_pyomq()
    fn = module.ROLES[role]
    profile = params.get("profile")
    if profile:
        prof = cProfile.Profile()
        try:
            prof.runcall(fn, params)
        finally:
            prof.dump_stats(profile)
    else:
        fn(params)
    return 0


if __name__ == "__main__":
    sys.exit(main())
