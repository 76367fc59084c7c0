"""Shared type aliases (``collections.abc.Buffer`` is 3.12+; we support 3.11)."""

from __future__ import annotations

from typing import TypeAlias

__all__ = ["BytesLike"]

#: What may be sent as a frame body.
BytesLike: TypeAlias = bytes | bytearray | memoryview
