"""The lab tests' shared lab: every site, no random outages, its own name prefix.

The prefix (``lwt<pid>``) keeps these tests away from a lab someone has up (``lw``) and
from other test runs; the lab is torn down at the end of the session, whatever happens.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from monitor.lab.impairment import SITE_ORDER
from monitor.lab.lab import Lab


def _skip_unless_able() -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (network namespaces, raw sockets)")
    if shutil.which("ip") is None:
        pytest.skip("the lab needs the ip command (iproute2)")


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """Yield a lab of all seven sites (SITES.md links, outages off so results are stable)."""
    _skip_unless_able()
    lab = Lab(f"lwt{os.getpid() % 100_000}")
    try:
        lab.up({site: {"outages_per_day": 0.0} for site in SITE_ORDER}, seed=7)
        yield lab
    finally:
        lab.down()
