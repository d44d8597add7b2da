"""Render the status page templates: one Jinja2 environment per UI language.

Autoescaping is on for every template, so every name from the configuration and every error
sentence from a probe is HTML-escaped. Each environment has its language's gettext
catalogue installed (Jinja2 i18n extension, new-style gettext), and the formatting helpers
of :mod:`api.status.format` as filters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from api.i18n import N_, Language, load_translations
from api.status.format import (
    NO_VALUE,
    format_age,
    format_availability,
    format_count,
    format_duration,
    format_ms,
    format_offset,
    format_percent,
    format_score,
    local_day,
    local_time,
    utc_offset,
)

STATE_LABELS: Mapping[str, str] = {
    "up": N_("UP"),
    "degraded": N_("DEGRADED"),
    "down": N_("DOWN"),
    "unknown": N_("UNKNOWN"),
    "maintenance": N_("MAINTENANCE"),
    "unreachable": N_("SITE UNREACHABLE"),
}
"""The word shown for each target/site state value (a message id; translate when shown)."""

REASON_LABELS: Mapping[str, str] = {
    "no_data": N_("No result yet"),
    "stale": N_("No recent result"),
    "monitor_error": N_("Monitor error: the probe could not measure"),
    "target_down": N_("The target did not answer as expected"),
    "rtt_over": N_("Round-trip time over the link's threshold"),
    "packet_loss_over": N_("Packet loss over the link's threshold"),
    "jitter_over": N_("Jitter over the link's threshold"),
    "ok": N_("Within the link's thresholds"),
}
"""Why a target has its state, by :class:`monitor.state.Reason` value (message ids)."""

RESULT_LABELS: Mapping[str, str] = {
    "up": N_("up"),
    "down": N_("down"),
    "error": N_("monitor error"),
}
"""The word shown for one stored result's status (``ProbeStatus`` value; message ids)."""

SCORE_LABELS: Mapping[str, str] = {"good": N_("good"), "fair": N_("fair"), "poor": N_("poor")}
"""The word for each :class:`api.status.score.ScoreBand` value (message ids)."""

LOSS_LABELS: Mapping[str, str] = {
    "0": N_("no loss"),
    "1": N_("loss up to 5 %%"),
    "2": N_("loss up to 20 %%"),
    "3": N_("loss up to 50 %%"),
    "4": N_("loss over 50 %%"),
}
"""The legend of each :class:`api.status.charts.LossClass` (message ids; %% is one %)."""

RANGE_LABELS: Mapping[str, str] = {
    "3h": N_("3 hours"),
    "1d": N_("1 day"),
    "7d": N_("7 days"),
    "30d": N_("30 days"),
    "1y": N_("1 year"),
}
"""The name of each :class:`api.status.charts.ChartRange` (message ids)."""

ROLE_LABELS: Mapping[str, str] = {
    "viewer": N_("viewer"),
    "operator": N_("operator"),
    "admin": N_("admin"),
}
"""The name of each :class:`monitor.accounts.users.Role` (message ids)."""

LOSS_COLOURS: Mapping[str, str] = {
    "0": "#1a9641",
    "1": "#2c7bb6",
    "2": "#7b3294",
    "3": "#e66101",
    "4": "#b2182b",
}
"""The colour of the median line per loss class (always beside a legend in words)."""

INCIDENT_KINDS: Mapping[str, str] = {
    "target": N_("Target DOWN"),
    "site": N_("Site unreachable"),
    "gateway": N_("Gateway lost from most sites"),
}
"""The words for each :class:`monitor.alerting.events.IncidentKind` value (message ids);
another kind is shown as it is."""

LANGUAGE_NAMES: Mapping[Language, str] = {Language.EN: "English", Language.LO: "ລາວ"}
"""Each language named in itself, for the language switch."""


@dataclass(frozen=True)
class Pages:
    """The compiled templates of the status page, one environment per language."""

    environments: Mapping[Language, Environment]

    def render(self, template: str, language: Language, context: Mapping[str, Any]) -> str:
        """Render ``template`` in ``language`` with ``context``; raise on an undefined name."""
        env = self.environments[language]
        return env.get_template(template).render({**context, "language": language})

    def render_block(
        self, template: str, block: str, language: Language, context: Mapping[str, Any]
    ) -> str:
        """Render only ``block`` of ``template`` (KeyError if it has no such block)."""
        tmpl = self.environments[language].get_template(template)
        ctx = tmpl.new_context({**context, "language": language})
        return "".join(tmpl.blocks[block](ctx))


def _environment(language: Language) -> Environment:
    env = Environment(
        loader=PackageLoader("api", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    translations = load_translations(language)
    env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(
        ms=format_ms,
        percent=format_percent,
        count=format_count,
        local_time=local_time,
        local_day=local_day,
        availability=format_availability,
        score=format_score,
        offset=format_offset,
        duration=lambda seconds: format_duration(seconds, translations.gettext),
    )
    env.globals.update(
        NO_VALUE=NO_VALUE,
        STATE_LABELS=STATE_LABELS,
        REASON_LABELS=REASON_LABELS,
        RESULT_LABELS=RESULT_LABELS,
        SCORE_LABELS=SCORE_LABELS,
        LOSS_LABELS=LOSS_LABELS,
        RANGE_LABELS=RANGE_LABELS,
        ROLE_LABELS=ROLE_LABELS,
        LOSS_COLOURS=LOSS_COLOURS,
        INCIDENT_KINDS=INCIDENT_KINDS,
        LANGUAGE_NAMES=LANGUAGE_NAMES,
        LANGUAGES=list(Language),
        utc_offset=utc_offset,
        age=lambda now, then: format_age(now, then, translations.gettext),
    )
    return env


def build_pages() -> Pages:
    """Compile the templates and load the catalogues of every language.

    Raises ``jinja2.TemplateError`` or a catalogue error (see
    :func:`api.i18n.load_translations`) if a shipped file is broken.
    """
    return Pages({language: _environment(language) for language in Language})
