"""Skip locally, fail in CI: a test whose tool or permission is missing on a developer's machine is
skipped there, but CI (``CI`` set, as ``.ci/run`` does) must really run it, so there it fails."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def skip_unless_ci(msg: str) -> NoReturn:
    """``pytest.skip(msg)``, or ``pytest.fail(msg)`` when the ``CI`` variable is set."""
    if os.environ.get("CI"):
        pytest.fail(f"{msg} (CI must run this test, never skip it)")
    pytest.skip(msg)
