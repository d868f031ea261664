"""End-to-end tests run in a loopback-only network namespace, like the media tests."""

from __future__ import annotations

# Importing the hook registers it for this directory too: every ``netns`` test here re-runs
# itself under ``unshare -n`` with only ``lo`` up.
from tests.media.conftest import in_loopback_namespace, pytest_runtest_protocol

__all__ = ["in_loopback_namespace", "pytest_runtest_protocol"]
