"""Fixtures shared by the unit tests; the plain helpers they call are in ``_helpers.py``."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture
def zmtp_info_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """``caplog``, capturing the ``zmtp`` logger's records from INFO up."""
    caplog.set_level(logging.INFO, logger="zmtp")
    return caplog
