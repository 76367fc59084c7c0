"""``python -m zmtp``: the wire-study tools' command line (see :mod:`zmtp.tools.cli`)."""

from .tools.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
