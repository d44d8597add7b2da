"""Every metric family the server exports: name, type, labels, unit, help (one place).

``docs/metrics.md`` holds the same table for people; ``tests/metrics`` compares it with this
catalogue and with a real scrape, so a name cannot drift. Labels are stable ids only.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.metrics.exposition import Family, MetricType

TARGET = ("site", "target", "kind")
SITE = ("site",)
CHANNEL = ("channel",)

RTT_BUCKETS_S: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
"""Upper bounds (seconds) of the RTT histogram: 1 ms (LAN) to 5 s (a loaded VSAT hop)."""


@dataclass(frozen=True, slots=True)
class Spec:
    """The fixed description of one family; :meth:`new` makes an empty one for a scrape."""

    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()
    unit: str | None = None
    buckets: tuple[float, ...] = ()

    def new(self) -> Family:
        """Return an empty family for one scrape."""
        return Family(self.name, self.type, self.help, self.labels, self.unit, self.buckets)


# Per target (labels site, target, kind), from the latest round while it is fresh.
PROBE_SUCCESS = Spec(
    "linkwatch_probe_success",
    MetricType.GAUGE,
    "Latest round: target answered (1) or not (0).",
    TARGET,
)
PROBE_MONITOR_ERROR = Spec(
    "linkwatch_probe_monitor_error",
    MetricType.GAUGE,
    "Latest round: the monitor could not measure (1, not a target failure) or could (0).",
    TARGET,
)
PROBE_RTT = Spec(
    "linkwatch_probe_rtt_seconds",
    MetricType.GAUGEHISTOGRAM,
    "RTT samples of the latest ICMP round (one per unique reply); not cumulative: no rate().",
    TARGET,
    "seconds",
    RTT_BUCKETS_S,
)
PROBE_RTT_MEAN = Spec(
    "linkwatch_probe_rtt_mean_seconds",
    MetricType.GAUGE,
    "Latest round's headline latency: ICMP mean RTT, TCP connect, HTTP first byte, DNS answer.",
    TARGET,
    "seconds",
)
PROBE_LOSS = Spec(
    "linkwatch_probe_packet_loss_ratio",
    MetricType.GAUGE,
    "Latest ICMP round's packet loss, 1 - unique replies / sent, ratio 0-1.",
    TARGET,
    "ratio",
)
PROBE_JITTER = Spec(
    "linkwatch_probe_jitter_seconds",
    MetricType.GAUGE,
    "Latest ICMP round's jitter: mean absolute difference of consecutive RTTs (RFC 3550 style).",
    TARGET,
    "seconds",
)
PROBE_DUPLICATES = Spec(
    "linkwatch_probe_duplicates",
    MetricType.GAUGE,
    "Latest ICMP round's duplicate echo replies (never counted as received).",
    TARGET,
)
PROBE_MEASURED = Spec(
    "linkwatch_probe_last_measured_timestamp_seconds",
    MetricType.GAUGE,
    "When the latest stored round was measured (agent clock), Unix time.",
    TARGET,
    "seconds",
)
PROBE_SCORE = Spec(
    "linkwatch_probe_link_quality_score",
    MetricType.GAUGE,
    "Latest round's link-quality score 0-100 against the site's link profile (0 when DOWN).",
    TARGET,
)
TARGET_STATE = Spec(
    "linkwatch_target_state",
    MetricType.GAUGE,
    "Derived target state: 1 for the current state, 0 for the others.",
    (*TARGET, "state"),
)

# Per site (label site).
SITE_REACHABLE = Spec(
    "linkwatch_site_reachable",
    MetricType.GAUGE,
    "The site's agent uploaded within server.site_silent_after_s (1) or not (0).",
    SITE,
)
SITE_LAST_UPLOAD = Spec(
    "linkwatch_site_last_upload_timestamp_seconds",
    MetricType.GAUGE,
    "When the site's agent was last seen: its last accepted upload (server clock), Unix time.",
    SITE,
    "seconds",
)
SITE_CLOCK_OFFSET = Spec(
    "linkwatch_site_clock_offset_seconds",
    MetricType.GAUGE,
    "Server clock minus the site agent's clock (agent's estimate, else at its last upload).",
    SITE,
    "seconds",
)
SITE_CLOCK_THRESHOLD = Spec(
    "linkwatch_site_clock_offset_warn_threshold_seconds",
    MetricType.GAUGE,
    "The site's agent.clock_offset_warn_s: a clock offset beyond it is flagged.",
    SITE,
    "seconds",
)
SITE_UPLOADS = Spec(
    "linkwatch_site_uploads",
    MetricType.COUNTER,
    "Upload batches accepted from the site's agent.",
    SITE,
)
RESULTS_STORED = Spec(
    "linkwatch_results_stored",
    MetricType.COUNTER,
    "Probe results stored for the site (resent ones once).",
    SITE,
)
SITE_STATE = Spec(
    "linkwatch_site_state",
    MetricType.GAUGE,
    "Derived site state: 1 for the current state, 0 for the others.",
    (*SITE, "state"),
)
SITE_RTT_THRESHOLD = Spec(
    "linkwatch_site_rtt_degraded_threshold_seconds",
    MetricType.GAUGE,
    "The site's link profile: an RTT over this makes a target DEGRADED.",
    SITE,
    "seconds",
)
SITE_LOSS_THRESHOLD = Spec(
    "linkwatch_site_packet_loss_degraded_threshold_ratio",
    MetricType.GAUGE,
    "The site's link profile: packet loss over this makes a target DEGRADED, ratio 0-1.",
    SITE,
    "ratio",
)
SITE_JITTER_THRESHOLD = Spec(
    "linkwatch_site_jitter_degraded_threshold_seconds",
    MetricType.GAUGE,
    "The site's link profile: jitter over this makes a target DEGRADED (absent: no limit).",
    SITE,
    "seconds",
)

# Per site, from the agent's newest spool report (sites whose agent sent one).
AGENT_BACKLOG = Spec(
    "linkwatch_site_spool_backlog_results",
    MetricType.GAUGE,
    "Results waiting in the site agent's spool at its newest report.",
    SITE,
)
AGENT_OLDEST_UNSENT = Spec(
    "linkwatch_site_spool_oldest_unsent_age_seconds",
    MetricType.GAUGE,
    "Age now of the oldest result waiting in the agent's spool at its newest report (0: none).",
    SITE,
    "seconds",
)
AGENT_DROPPED = Spec(
    "linkwatch_site_spool_dropped_results",
    MetricType.COUNTER,
    "Results the site agent dropped unsent (spool full or too old) since its spool was made.",
    SITE,
)
AGENT_REJECTED = Spec(
    "linkwatch_site_spool_rejected_results",
    MetricType.COUNTER,
    "Results of the site agent that the server refused (kept aside at the agent).",
    SITE,
)
AGENT_REPORTED = Spec(
    "linkwatch_site_spool_report_timestamp_seconds",
    MetricType.GAUGE,
    "When the agent's newest spool report arrived (server clock), Unix time.",
    SITE,
    "seconds",
)

# Notifications (every configured channel; outcome and status values are fixed enums).
NOTIFY_ATTEMPTS = Spec(
    "linkwatch_notification_attempts",
    MetricType.COUNTER,
    "Finished notification delivery attempts by channel and outcome.",
    (*CHANNEL, "outcome"),
)
NOTIFY_DELIVERIES = Spec(
    "linkwatch_notification_deliveries",
    MetricType.GAUGE,
    "Notification deliveries by channel and status (pending and sending: the backlog).",
    (*CHANNEL, "status"),
)

# The server itself.
DATABASE_UP = Spec(
    "linkwatch_database_up",
    MetricType.GAUGE,
    "Whether the server could read its database (1) or not (0).",
)
BUILD = Spec("linkwatch_build", MetricType.INFO, "Linkwatch version and Python version.")

ALL: tuple[Spec, ...] = (
    PROBE_SUCCESS,
    PROBE_MONITOR_ERROR,
    PROBE_RTT,
    PROBE_RTT_MEAN,
    PROBE_LOSS,
    PROBE_JITTER,
    PROBE_DUPLICATES,
    PROBE_MEASURED,
    PROBE_SCORE,
    TARGET_STATE,
    SITE_REACHABLE,
    SITE_LAST_UPLOAD,
    SITE_CLOCK_OFFSET,
    SITE_UPLOADS,
    RESULTS_STORED,
    SITE_STATE,
    SITE_RTT_THRESHOLD,
    SITE_LOSS_THRESHOLD,
    SITE_JITTER_THRESHOLD,
    SITE_CLOCK_THRESHOLD,
    AGENT_BACKLOG,
    AGENT_OLDEST_UNSENT,
    AGENT_DROPPED,
    AGENT_REJECTED,
    AGENT_REPORTED,
    NOTIFY_ATTEMPTS,
    NOTIFY_DELIVERIES,
    DATABASE_UP,
    BUILD,
)
"""Every family, in exposition order."""
