"""Fixtures for the availability tests; the worlds come from ``tests/alerting``'s kit."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "alerting"))

from alerting_testkit import World, WorldFactory, migrated_world

from monitor.config import Config


@pytest.fixture
def make_world(db_url: str) -> Iterator[WorldFactory]:
    """Return ``make_world(config, **evaluator_options)``: a context manager on ``db_url``."""

    def build(config: Config, **options: Any) -> AbstractContextManager[World]:
        return migrated_world(db_url, config, **options)

    yield build
