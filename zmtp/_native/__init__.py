"""Native tricks: CPython- and glibc-specific speed-ups, each with a portable fallback."""
