"""zmtp._native: the malloc tuning (opt-in for the library, by default in python -m proxy)
and the fallbacks of both native tricks where ctypes or glibc is missing."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import zmtp
import zmtp._native
from zmtp._native import allocator
from zmtp._native.allocator import tune_allocator, tune_for_large_messages
from zmtp.protocol.framing import portable_body

from ._helpers import imported_modules

ROOT = Path(__file__).resolve().parent.parent


def test_negative_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        tune_allocator(mmap_threshold=-1)
    with pytest.raises(ValueError, match=">= 0"):
        tune_allocator(trim_threshold=-5)


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="mallopt thresholds are a glibc feature",
)
def test_glibc_accepts_the_settings() -> None:
    assert ctypes.util.find_library("c") is not None
    # Values above glibc's own cap are clamped, not rejected.
    assert tune_allocator(mmap_threshold=1 << 40, trim_threshold=1 << 40) is True
    assert tune_allocator() is True


class _NoMallopt:
    """A C library without mallopt (musl, macOS...): ``CDLL(name).mallopt`` fails."""

    def __init__(self, name: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)


def test_no_mallopt_means_no_tuning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_tuned", None)  # restored at teardown
    monkeypatch.setattr(ctypes, "CDLL", _NoMallopt)
    assert allocator._load_mallopt() is None
    assert tune_for_large_messages() is False
    assert allocator._tuned is False  # remembered: not looked up again
    assert tune_allocator() is False


def test_no_c_library_means_no_tuning(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_library(name: Any, *args: Any, **kwargs: Any) -> Any:
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(allocator, "_tuned", None)
    monkeypatch.setattr(ctypes, "CDLL", no_library)
    assert tune_allocator() is False


def test_no_ctypes_means_no_tuning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_tuned", None)
    monkeypatch.setattr(allocator, "ctypes", None)
    assert allocator._load_mallopt() is None
    assert tune_for_large_messages() is False


#: Without ctypes: everything of ours imports, bodies are portable, tuning is off.  (trio
#: itself imports ctypes, so it is imported first; only our imports then fail.)
_NO_CTYPES_SCRIPT = """
import sys
import trio
for name in [m for m in sys.modules if m == "ctypes" or m.startswith("ctypes.")]:
    del sys.modules[name]
sys.modules["ctypes"] = None  # "import ctypes" now raises ImportError
sys.modules["ctypes.util"] = None
import zmtp, zmtp._native, proxy._cli
from zmtp.protocol.framing import portable_body
from zmtp._native import allocator, bodies
assert bodies.zero_copy_body is None and bodies.ZERO_COPY is False
assert zmtp._native.body_allocator(True) is portable_body
assert zmtp.Context(native=True)._body_allocator is portable_body
assert allocator.tune_allocator() is False
assert allocator.tune_for_large_messages() is False
print("ok")
"""


def test_without_ctypes_everything_falls_back() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _NO_CTYPES_SCRIPT],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "ZMTP_NATIVE"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZMTP_NATIVE", raising=False)
    on = zmtp._native.policy()
    assert (on.native, on.tune_allocator) == (True, False)
    assert on.body_allocator is zmtp._native.body_allocator(True)
    assert on.part_allocator is zmtp._native.bodies.opened_part
    assert zmtp._native.policy(tune_allocator=True).tune_allocator is True
    off = zmtp._native.policy(False, True)
    assert (off.native, off.tune_allocator, off.body_allocator) == (False, False, portable_body)
    assert off.part_allocator is None
    monkeypatch.setenv("ZMTP_NATIVE", "0")
    env_off = zmtp._native.policy(None, True)
    assert (env_off.native, env_off.tune_allocator) == (False, False)
    assert env_off.body_allocator is portable_body
    assert env_off.part_allocator is None
    with pytest.raises(TypeError, match="native"):
        zmtp._native.policy("on", False)  # type: ignore[arg-type]


def test_the_protocol_core_imports_nothing_native() -> None:
    # Read, not imported (importing zmtp.protocol runs zmtp/__init__, which loads the
    # socket layer): the core gets its body allocator as an argument.
    core = Path(zmtp.__file__).parent / "protocol"
    offenders = {}
    for path in core.rglob("*.py"):
        rel = path.relative_to(core.parent.parent).with_suffix("")
        package = ".".join(rel.parts[:-1])
        bad = {
            m
            for m in imported_modules(path, package)
            if m.split(".")[0] in ("ctypes", "trio")
            or m.startswith(("zmtp._native", "zmtp.sockets"))
        }
        if bad:
            offenders[str(rel)] = sorted(bad)
    assert offenders == {}
