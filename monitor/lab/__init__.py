"""The network-namespace test lab: a gateway and seven sites on one Linux machine.

See docs/lab.md. :class:`Lab` builds and tears it down; the echo responder
(:mod:`monitor.lab.responder`) impairs each site's link and records the truth
(:mod:`monitor.lab.truth`). Importing this package has no side effects.
"""

from __future__ import annotations

from monitor.lab.impairment import (
    SITE_ORDER,
    LabError,
    LinkImpairment,
    default_impairments,
    load_impairments,
)
from monitor.lab.lab import Lab, LabStatus, SiteStatus
from monitor.lab.topology import GATEWAY, GATEWAY6, LabSite, bulk_targets
from monitor.lab.truth import TruthRecord, by_destination, read_truth

__all__ = [
    "GATEWAY",
    "GATEWAY6",
    "SITE_ORDER",
    "Lab",
    "LabError",
    "LabSite",
    "LabStatus",
    "LinkImpairment",
    "SiteStatus",
    "TruthRecord",
    "bulk_targets",
    "by_destination",
    "default_impairments",
    "load_impairments",
    "read_truth",
]
