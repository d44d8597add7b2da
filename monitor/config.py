"""The configuration model: one YAML file for the server, the sites and their targets.

These pydantic models are strict (unknown keys refused, values range-checked). Reading the
file, with file:line:column and a dotted key path in every error, is
:mod:`monitor.config_loader`'s job.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from probes.specs import TargetSpec

SITE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
_SITE_ID_RE = re.compile(SITE_ID_PATTERN)


class ConfigError(Exception):
    """The configuration is invalid; ``messages`` holds one line per problem.

    Each message reads ``FILE:LINE:COLUMN: dotted.key.path: what is wrong`` when the
    position is known.
    """

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_zone(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {v!r}") from exc
    return v


class ServerConfig(_Strict):
    """The central service."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="URL the agents upload to; defaults to http://host:port.",
    )
    database_url: str = Field(
        default="sqlite:///linkwatch.db",
        description="SQLAlchemy URL; sqlite:///relative/path is relative to the working dir.",
    )
    time_zone: str = "Asia/Vientiane"
    site_silent_after_s: float = Field(
        default=120.0,
        gt=0,
        description="A site whose agent has not uploaded for this long is UNKNOWN.",
    )
    title: str = "Linkwatch"

    _zone = field_validator("time_zone")(classmethod(lambda cls, v: _check_zone(v)))

    @property
    def agent_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


class LinkProfile(_Strict):
    """Thresholds over which a reachable target is DEGRADED, per kind of link."""

    rtt_degraded_s: float = Field(gt=0)
    packet_loss_degraded: float = Field(default=0.05, ge=0, le=1)
    jitter_degraded_s: float | None = Field(default=None, gt=0)
    description: str | None = None


DEFAULT_LINK_PROFILES: dict[str, LinkProfile] = {
    "lan": LinkProfile(rtt_degraded_s=0.02, packet_loss_degraded=0.01, description="LAN"),
    "fibre": LinkProfile(rtt_degraded_s=0.1, packet_loss_degraded=0.02, jitter_degraded_s=0.02),
    "4g": LinkProfile(rtt_degraded_s=0.25, packet_loss_degraded=0.05, jitter_degraded_s=0.08),
    "3g": LinkProfile(rtt_degraded_s=0.5, packet_loss_degraded=0.1, jitter_degraded_s=0.15),
    "vsat": LinkProfile(rtt_degraded_s=1.2, packet_loss_degraded=0.08, jitter_degraded_s=0.15),
}


class AgentConfig(_Strict):
    """How a site's agent runs; set once under ``agent`` and overridden per site."""

    spool_path: str | None = Field(
        default=None, description="SQLite spool file; default linkwatch-spool-<site>.db"
    )
    upload_interval_s: float = Field(default=5.0, gt=0, le=3600)
    batch_max_results: int = Field(default=500, ge=1, le=5000)
    max_concurrency: int = Field(default=64, ge=1, le=10_000)
    retry_max_s: float = Field(default=300.0, gt=0, le=86_400)
    upload_timeout_s: float = Field(default=30.0, gt=0, le=600)


class SiteConfig(_Strict):
    """A place where an agent runs, and what it probes."""

    name: str = Field(min_length=1)
    name_lo: str | None = Field(default=None, description="The name in Lao script.")
    region: str | None = None
    time_zone: str | None = None
    link_profile: str = "fibre"
    token: str | None = Field(default=None, min_length=16, description="Upload bearer token.")
    token_env: str | None = Field(
        default=None, description="Name of the environment variable holding the token."
    )
    agent: AgentConfig | None = None
    targets: list[TargetSpec] = Field(min_length=1)

    _zone = field_validator("time_zone")(
        classmethod(lambda cls, v: None if v is None else _check_zone(v))
    )

    @model_validator(mode="after")
    def _one_token_source(self) -> SiteConfig:
        if (self.token is None) == (self.token_env is None):
            raise ValueError("give exactly one of token or token_env")
        ids = [t.id for t in self.targets]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate target id(s): {', '.join(dupes)}")
        return self

    def resolve_token(self) -> str:
        """Return the site's upload token; raise ConfigError if ``token_env`` is unset."""
        if self.token is not None:
            return self.token
        assert self.token_env is not None
        value = os.environ.get(self.token_env)
        if not value:
            raise ConfigError([f"environment variable {self.token_env} (token_env) is not set"])
        return value


class Config(_Strict):
    """The whole configuration file."""

    server: ServerConfig = ServerConfig()
    agent: AgentConfig = AgentConfig()
    link_profiles: dict[str, LinkProfile] = Field(default_factory=dict)
    sites: dict[str, SiteConfig] = Field(min_length=1)

    _source: Path | None = PrivateAttr(default=None)

    @field_validator("sites")
    @classmethod
    def _site_ids(cls, v: dict[str, SiteConfig]) -> dict[str, SiteConfig]:
        for site_id in v:
            if not _SITE_ID_RE.match(site_id):
                raise ValueError(
                    f"site id {site_id!r} must be 1-32 characters of a-z, 0-9, '-' or '_'"
                )
        return v

    @model_validator(mode="after")
    def _profiles_exist(self) -> Config:
        known = self.profiles
        for site_id, site in self.sites.items():
            if site.link_profile not in known:
                raise ValueError(
                    f"sites.{site_id}.link_profile: unknown link profile {site.link_profile!r}; "
                    f"known: {', '.join(sorted(known))}"
                )
        return self

    @property
    def profiles(self) -> dict[str, LinkProfile]:
        """Built-in link profiles overlaid with the file's ``link_profiles``."""
        return {**DEFAULT_LINK_PROFILES, **self.link_profiles}

    def site_agent(self, site_id: str) -> AgentConfig:
        """The agent settings for ``site_id``: the site's own ``agent`` block, else the global."""
        return self.sites[site_id].agent or self.agent

    def site_zone(self, site_id: str) -> str:
        return self.sites[site_id].time_zone or self.server.time_zone

    @property
    def source(self) -> Path | None:
        """The file this config was read from, if any."""
        return self._source
