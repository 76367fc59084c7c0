"""One atheris process: ``python -m fuzz.run TARGET [libFuzzer options] [corpus dirs]``.

Started by ``python -m fuzz``; the zmtp modules are imported under atheris's
instrumentation so that coverage guides the mutations.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["zmtp", "fuzz"]):
    from fuzz.targets import TARGETS


def main() -> None:
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
