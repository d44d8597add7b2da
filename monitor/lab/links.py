"""Per-site drop and hold decisions of the responder, from seeded generators (pure)."""

from __future__ import annotations

import random

from monitor.lab.impairment import LinkImpairment

WHY_LOSS = "loss"
WHY_OUTAGE = "outage"


class SiteLink:
    """One site's impairment in force, with its seeded random generators and outage clock.

    Three generators per site, seeded from ``"<seed>:<site>:loss"``, ``"...:delay"`` and
    ``"...:outage"`` (``random.Random`` hashes a str seed with SHA-512: the same on every run
    and platform), so the same sequence of requests from a site gets the same drops whatever
    its delay, and a run can be repeated. Formulas: :mod:`monitor.lab.impairment`.

    Args:
        site_id: the site.
        impairment: its link.
        seed: the lab's seed.
        t0_ns: when the outage clock starts (monotonic ns).
    """

    __slots__ = (
        "delay_rng",
        "delay_s",
        "id",
        "impairment",
        "loss",
        "loss_rng",
        "outage_end_ns",
        "outage_rng",
        "outage_start_ns",
        "sigma_s",
    )

    def __init__(self, site_id: str, impairment: LinkImpairment, seed: int, t0_ns: int) -> None:
        self.id = site_id
        self.impairment = impairment
        self.loss = impairment.loss
        self.delay_s = impairment.delay_s
        self.sigma_s = impairment.sigma_s
        self.loss_rng = random.Random(f"{seed}:{site_id}:loss")
        self.delay_rng = random.Random(f"{seed}:{site_id}:delay")
        self.outage_rng = random.Random(f"{seed}:{site_id}:outage")
        self.outage_start_ns = self.outage_end_ns = 0
        if impairment.outages_per_day > 0:
            self._next_outage(t0_ns)

    def _next_outage(self, after_ns: int) -> None:
        rate_per_s = self.impairment.outages_per_day / 86_400
        gap_s = self.outage_rng.expovariate(rate_per_s)
        length_s = min(
            self.outage_rng.expovariate(1 / self.impairment.outage_mean_s),
            self.impairment.outage_max_s,
        )
        self.outage_start_ns = after_ns + round(gap_s * 1e9)
        self.outage_end_ns = self.outage_start_ns + round(length_s * 1e9)

    def decide(self, now_ns: int) -> tuple[str | None, float]:
        """Return ``(why dropped or None, hold_s)`` for a request arriving at ``now_ns``.

        ``now_ns`` is monotonic. The loss draw is made for every request (in an outage too),
        so the drop pattern of a request sequence does not depend on when outages fall.
        """
        lost = self.loss_rng.random() < self.loss
        if self.outage_end_ns:
            while now_ns >= self.outage_end_ns:
                self._next_outage(self.outage_end_ns)
            if now_ns >= self.outage_start_ns:
                return WHY_OUTAGE, 0.0
        if lost:
            return WHY_LOSS, 0.0
        hold_s = self.delay_s
        if self.sigma_s:
            hold_s = max(0.0, hold_s + self.delay_rng.gauss(0.0, self.sigma_s))
        return None, hold_s
