"""Link impairment of a lab site: delay, jitter, loss and outages (config values, not constants).

The kernel here has no ``netem``, so the lab's responder (:mod:`monitor.lab.responder`)
applies these to the echo requests each site sends to the gateway. The defaults are the
assumed links of ``shared/SITES.md`` (assumptions, not measurements); a YAML file given to
``linkwatch lab up --impairments FILE`` overrides any of them, site by site and key by key::

    ftb2: {delay_s: 0.05, loss: 0.1}
    btn: {outages_per_day: 24, outage_mean_s: 60}

How the responder draws them (per site, from seeded generators, see the responder):

- hold time of a reply = ``delay_s + N(0, sigma)``, clipped at 0, with
  ``sigma = jitter_s * sqrt(pi) / 2``: for independent normal holds the expected absolute
  difference of two consecutive samples is ``2 * sigma / sqrt(pi)``, so the project's
  jitter (mean absolute difference of consecutive RTTs, RFC 3550 section 6.4.1 without
  smoothing) comes out as ``jitter_s``;
- each request is dropped with probability ``loss`` (independent draws);
- outages start as a Poisson process of ``outages_per_day`` per day; each lasts an
  exponential time of mean ``outage_mean_s``, at most ``outage_max_s``; every request
  during an outage is dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class LabError(Exception):
    """The lab cannot do what was asked; ``str()`` is one human sentence."""


class LinkImpairment(BaseModel):
    """How one site's link to the gateway misbehaves (applied to ICMP echo by the responder).

    Attributes:
        delay_s: mean time the reply is held, seconds (the link's round-trip time).
        jitter_s: mean absolute difference of consecutive hold times, seconds.
        loss: ratio 0-1 of requests dropped at random.
        outages_per_day: mean number of outages a day (0: none).
        outage_mean_s: mean outage length, seconds.
        outage_max_s: longest outage, seconds.
        description: what kind of link this stands for.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    delay_s: float = Field(default=0.0, ge=0, le=60)
    jitter_s: float = Field(default=0.0, ge=0, le=10)
    loss: float = Field(default=0.0, ge=0, le=1)
    outages_per_day: float = Field(default=0.0, ge=0, le=86_400)
    outage_mean_s: float = Field(default=300.0, gt=0, le=86_400)
    outage_max_s: float = Field(default=3600.0, gt=0, le=86_400)
    description: str | None = None

    @property
    def sigma_s(self) -> float:
        """Standard deviation of the normal hold-time noise giving ``jitter_s`` (seconds)."""
        return self.jitter_s * math.sqrt(math.pi) / 2


SITE_ORDER: tuple[str, ...] = ("ftb2", "ftb3", "ftb4", "lpq", "pkz", "dsv", "btn")
"""The seven sites of ``shared/SITES.md`` in its order; a site's lab index is its position + 1."""


def default_impairments() -> dict[str, LinkImpairment]:
    """Return the assumed link of each of the seven sites (``shared/SITES.md``'s table).

    Outage rates are our reading of the table's words: "rare" = once in 50 days, 10 min;
    "a few a week" = 0.5 a day, 5 min; "daily, minutes long" = 1 a day, 5 min; "rain fade,
    up to an hour" = 0.2 a day, 20 min mean, 1 h at most.
    """
    rare = {"outages_per_day": 0.02, "outage_mean_s": 600.0}
    return {
        "ftb2": LinkImpairment(
            delay_s=0.012, jitter_s=0.001, loss=0.001, **rare, description="fibre"
        ),
        "ftb3": LinkImpairment(
            delay_s=0.010, jitter_s=0.001, loss=0.001, **rare, description="fibre"
        ),
        "ftb4": LinkImpairment(
            delay_s=0.045,
            jitter_s=0.015,
            loss=0.01,
            outages_per_day=0.5,
            outage_mean_s=300.0,
            description="4G",
        ),
        "lpq": LinkImpairment(
            delay_s=0.008, jitter_s=0.001, loss=0.001, **rare, description="fibre"
        ),
        "pkz": LinkImpairment(
            delay_s=0.015, jitter_s=0.002, loss=0.002, **rare, description="fibre"
        ),
        "dsv": LinkImpairment(
            delay_s=0.120,
            jitter_s=0.040,
            loss=0.03,
            outages_per_day=1.0,
            outage_mean_s=300.0,
            description="3G",
        ),
        "btn": LinkImpairment(
            delay_s=0.600,
            jitter_s=0.030,
            loss=0.02,
            outages_per_day=0.2,
            outage_mean_s=1200.0,
            outage_max_s=3600.0,
            description="VSAT (geostationary)",
        ),
    }


def merge_impairments(
    overrides: Mapping[str, Mapping[str, Any] | LinkImpairment] | None,
) -> dict[str, LinkImpairment]:
    """Return the defaults with ``overrides`` applied, site by site and key by key.

    A site not among the seven is added after them (it gets the next index). A value given
    as a mapping changes only the keys it names (of the default for that site, else of a
    perfect link); a :class:`LinkImpairment` replaces the site's entry whole.

    Raises:
        LabError: a value is out of range or a key is unknown; the sentence names both.
    """
    merged = default_impairments()
    for site, value in (overrides or {}).items():
        if isinstance(value, LinkImpairment):
            merged[site] = value
            continue
        base = merged.get(site, LinkImpairment()).model_dump()
        try:
            merged[site] = LinkImpairment.model_validate({**base, **dict(value)})
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in (site, *err["loc"]))
            raise LabError(f"impairment {where}: {err['msg']}") from None
    return merged


def load_impairments(path: Path) -> dict[str, LinkImpairment]:
    """Read a YAML file of per-site overrides and return the merged impairments.

    Raises:
        LabError: the file cannot be read, is not a mapping of site ids to mappings, or a
            value is invalid; the sentence names the file and the key.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LabError(f"cannot read the impairments file {path}: {exc.strerror}") from None
    try:
        data = YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise LabError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise LabError(f"{path} must map site ids to mappings such as {{delay_s: 0.05}}")
    try:
        return merge_impairments({str(k): v for k, v in data.items()})
    except LabError as exc:
        raise LabError(f"{path}: {exc}") from None
