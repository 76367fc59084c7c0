"""zmtp._native.allocator: the opt-in glibc tuning that python -m proxy applies."""

from __future__ import annotations

import ctypes.util
import platform

import pytest

from zmtp._native.allocator import tune_allocator


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
