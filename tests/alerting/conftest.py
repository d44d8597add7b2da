"""Fixtures for the alerting tests: :mod:`alerting_testkit` builds the worlds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from alerting_testkit import World, WorldFactory, migrated_world

from monitor.config import Config


@pytest.fixture
def make_world(db_url: str) -> Iterator[WorldFactory]:
    """Return ``make_world(config, **evaluator_options)``: a context manager on ``db_url``."""

    def build(config: Config, **options: Any) -> AbstractContextManager[World]:
        return migrated_world(db_url, config, **options)

    yield build
