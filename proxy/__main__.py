"""``python -m proxy``: run a ZeroMQ proxy from the command line (see :mod:`proxy._cli`)."""

import sys

from ._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
