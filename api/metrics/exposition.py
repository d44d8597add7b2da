"""Metric families and their exposition: Prometheus text 0.0.4 and OpenMetrics 1.0.0.

Why not ``prometheus_client.generate_latest``: it formats every sample from a label dict
(sorting, escaping and float formatting each time), about 10 µs a sample here, so 1,000
sites x 10 targets (~175,000 samples) took about 2 s. A :class:`Family` holds its samples as
finished text lines, made from label strings escaped and ordered once (and, for the state
sets and histograms, from blocks the collector caches), so a scrape mostly joins strings.

The output is what ``prometheus_client`` writes for the same families: counters expose
``x_total`` (HELP/TYPE ``x_total`` in text 0.0.4, ``x`` in OpenMetrics), info metrics
``x_info`` (a gauge in 0.0.4), gauge histograms ``x_bucket`` with ``x_gcount`` and ``x_gsum``
(0.0.4 has no gauge histogram: a ``histogram`` family of the buckets and two gauge families,
as ``prometheus_client`` writes it). :meth:`Family.to_client_metrics` parses a family back
into ``prometheus_client`` metrics, for a registry and for the tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

_SMALL_INTS = tuple(repr(float(i)) for i in range(1024))
ONE = "1.0"
ZERO = "0.0"


class MetricType(StrEnum):
    """The OpenMetrics type of a family (see the module docstring for text 0.0.4)."""

    GAUGE = "gauge"
    COUNTER = "counter"
    INFO = "info"
    GAUGEHISTOGRAM = "gaugehistogram"


def escape_label_value(value: str) -> str:
    """Escape a label value for both formats: backslash, double quote, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def label_string(names: Sequence[str], values: Sequence[str]) -> str:
    """Return ``a="x",b="y"`` for the pairs, sorted by label name (as prometheus_client does)."""
    return ",".join(
        f'{n}="{escape_label_value(v)}"' for n, v in sorted(zip(names, values, strict=True))
    )


def format_value(value: float) -> str:
    """Format a sample value: ``1.0``, ``0.012``, ``+Inf``, ``-Inf``, ``NaN``."""
    if type(value) is float and value - value == 0.0:  # finite (the common case, first)
        return repr(value)
    if isinstance(value, int) and 0 <= value < len(_SMALL_INTS):
        return _SMALL_INTS[value]
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


@dataclass(frozen=True, slots=True)
class HistogramLines:
    """Label sets of a gauge histogram as text: bucket lines, ``_gcount``, ``_gsum`` lines,
    and ``grouped``, the same lines label set by label set (OpenMetrics keeps each label
    set's samples together; text 0.0.4 writes the buckets, then the two gauges)."""

    buckets: str
    gcount: str
    gsum: str
    grouped: str

    @classmethod
    def merge(cls, parts: Sequence[HistogramLines]) -> HistogramLines:
        """Return the lines of several label sets, in order."""
        return cls(
            "".join(p.buckets for p in parts),
            "".join(p.gcount for p in parts),
            "".join(p.gsum for p in parts),
            "".join(p.grouped for p in parts),
        )


@dataclass(slots=True)
class Family:
    """One metric family being filled for one scrape.

    Attributes:
        name: the family name without type suffixes (a counter ``x`` exposes ``x_total``,
            an info ``x`` exposes ``x_info``, a gauge histogram ``x`` exposes ``x_bucket``,
            ``x_gcount`` and ``x_gsum``).
        type: the OpenMetrics type.
        help: one line of documentation.
        labels: the label names of every sample (``le`` excluded).
        unit: the OpenMetrics unit (``seconds``, ``ratio``); the name must end with it.
        buckets: a gauge histogram's upper bounds, ascending, without ``+Inf``.
    """

    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()
    unit: str | None = None
    buckets: tuple[float, ...] = ()
    sample_name: str = ""
    _lines: list[str] = field(default_factory=list)
    _histograms: list[HistogramLines] = field(default_factory=list)
    _bucket_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.unit and not self.name.endswith(f"_{self.unit}"):
            raise ValueError(f"metric {self.name}: the name must end with its unit {self.unit}")
        self._bucket_names = (*(format_value(b) for b in self.buckets), "+Inf")
        suffix = {MetricType.COUNTER: "_total", MetricType.INFO: "_info"}.get(self.type, "")
        self.sample_name = f"{self.name}{suffix}"

    def add(self, labels: str, value: float) -> None:
        """Add the sample of one label set (``labels`` from :func:`label_string`)."""
        self.add_text(labels, format_value(value))

    def add_text(self, labels: str, text: str) -> None:
        """Add a sample whose value is already formatted (:data:`ONE`, :data:`ZERO`)."""
        if labels:
            self._lines.append(f"{self.sample_name}{{{labels}}} {text}\n")
        else:
            self._lines.append(f"{self.sample_name} {text}\n")

    def add_lines(self, lines: str) -> None:
        """Add finished sample lines of this family (from :meth:`lines_for`, cached)."""
        self._lines.append(lines)

    def line_sink(self) -> Callable[[str], None]:
        """Return :meth:`add_lines` as the bare ``list.append`` (for a loop adding many)."""
        return self._lines.append

    def lines_for(self, samples: Iterable[tuple[str, str]]) -> str:
        """Return the lines of ``(labels, formatted value)`` samples, for a cache."""
        return "".join(f"{self.sample_name}{{{labels}}} {text}\n" for labels, text in samples)

    def histogram_lines(
        self, labels: str, cumulative: Sequence[int], total: float
    ) -> HistogramLines:
        """Return one gauge histogram's lines: ``cumulative`` counts per bucket, ``+Inf`` last.

        ``cumulative`` has ``len(buckets) + 1`` entries; the last is the number of
        observations (``_gcount``); ``total`` is their sum (``_gsum``). Pure: cache it.
        """
        sep = "," if labels else ""
        small = _SMALL_INTS
        buckets = "".join(
            [
                f'{self.name}_bucket{{{labels}{sep}le="{bound}"}} '
                f"{small[count] if 0 <= count < len(small) else format_value(count)}\n"
                for bound, count in zip(self._bucket_names, cumulative, strict=True)
            ]
        )
        gcount = f"{self.name}_gcount{{{labels}}} {format_value(cumulative[-1])}\n"
        gsum = f"{self.name}_gsum{{{labels}}} {format_value(total)}\n"
        return HistogramLines(buckets, gcount, gsum, buckets + gcount + gsum)

    def add_histogram(self, lines: HistogramLines) -> None:
        """Add label sets of a gauge histogram (from :meth:`histogram_lines`, or merged)."""
        self._histograms.append(lines)

    @property
    def empty(self) -> bool:
        """Whether the family has no sample."""
        return not self._lines and not self._histograms

    def render_text(self, out: list[str]) -> None:
        """Append the family in text format 0.0.4 (as prometheus_client writes it)."""
        doc = _escape_help(self.help)
        if self.type is MetricType.GAUGEHISTOGRAM:
            out.append(f"# HELP {self.name} {doc}\n# TYPE {self.name} histogram\n")
            out.extend(h.buckets for h in self._histograms)
            out.append(f"# HELP {self.name}_gcount {doc}\n# TYPE {self.name}_gcount gauge\n")
            out.extend(h.gcount for h in self._histograms)
            out.append(f"# HELP {self.name}_gsum {doc}\n# TYPE {self.name}_gsum gauge\n")
            out.extend(h.gsum for h in self._histograms)
            return
        kind = "gauge" if self.type is MetricType.INFO else self.type.value
        out.append(f"# HELP {self.sample_name} {doc}\n# TYPE {self.sample_name} {kind}\n")
        out.extend(self._lines)

    def render_openmetrics(self, out: list[str]) -> None:
        """Append the family in OpenMetrics 1.0.0 (without the final ``# EOF``)."""
        out.append(f"# HELP {self.name} {_escape_help(self.help)}\n")
        out.append(f"# TYPE {self.name} {self.type.value}\n")
        if self.unit:
            out.append(f"# UNIT {self.name} {self.unit}\n")
        if self.type is MetricType.GAUGEHISTOGRAM:
            out.extend(h.grouped for h in self._histograms)
            return
        out.extend(self._lines)

    def to_client_metrics(self) -> list[Metric]:
        """Return the family as ``prometheus_client`` metrics (parsed from OpenMetrics)."""
        out: list[str] = []
        self.render_openmetrics(out)
        out.append("# EOF\n")
        return list(parse_openmetrics("".join(out)))  # type: ignore[no-untyped-call]


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def render(families: Iterable[Family], openmetrics: bool) -> bytes:
    """Render every family in one format; OpenMetrics ends with ``# EOF``."""
    out: list[str] = []
    for family in families:
        if openmetrics:
            family.render_openmetrics(out)
        else:
            family.render_text(out)
    if openmetrics:
        out.append("# EOF\n")
    return "".join(out).encode()


def wants_openmetrics(accept: str) -> bool:
    """Return whether an ``Accept`` header asks for OpenMetrics (as Prometheus 2.x does)."""
    return any(
        part.split(";", 1)[0].strip() == "application/openmetrics-text"
        for part in accept.split(",")
    )
