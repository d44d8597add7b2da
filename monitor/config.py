"""The configuration model: one YAML file for the server, the sites and their targets.

These pydantic models are strict (unknown keys refused, values range-checked). Reading the
file, with file:line:column and a dotted key path in every error, is
:mod:`monitor.config_loader`'s job.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from monitor.alerting.channels.specs import NotificationsConfig
from probes.specs import HttpTarget, TargetSpec

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


KeyPath = tuple[str | int, ...]
"""A key path into the configuration: mapping keys and list indexes, e.g. ``("sites", "lpq")``."""

Problem = tuple[KeyPath, str]
"""One problem a validator found: where (relative to the validated object) and what."""


class ProblemsAt(ValueError):
    """Raise from a validator to report problems below the object it validates.

    ``problems`` holds ``(key path relative to the validated object, message)`` pairs, so the
    loader can point each message at the line of that key rather than at the object.
    ``str()`` joins ``dotted.path: message`` pairs with "; ", for code that builds a config
    without the loader.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(_relative(path, msg) for path, msg in self.problems))


def _relative(path: KeyPath, message: str) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return f"{text}: {message}" if text else message


def token_source_problems(has_token: bool, has_token_env: bool) -> list[Problem]:
    """Return the problem with a site's upload token source: exactly one must be given.

    Paths are relative to the site. Shared by :class:`SiteConfig` and the loader, which runs
    it on the raw file when other errors stop pydantic from reaching this check.
    """
    if has_token and has_token_env:
        return [(("token_env",), "give either token or token_env, not both")]
    if not has_token and not has_token_env:
        return [((), "no upload token: give token_env (the environment variable) or token")]
    return []


def duplicate_target_id_problems(ids: Sequence[object]) -> list[Problem]:
    """Return one problem per target whose ``id`` repeats an earlier target's id.

    ``ids`` are the targets' ids in file order (anything that is not a string is skipped);
    paths are relative to the ``targets`` list: ``(index, "id")``.
    """
    seen: dict[str, int] = {}
    problems: list[Problem] = []
    for index, target_id in enumerate(ids):
        if not isinstance(target_id, str):
            continue
        if target_id in seen:
            problems.append(
                (
                    (index, "id"),
                    f"duplicate target id {target_id!r}: target {seen[target_id] + 1} "
                    "of this site already uses it",
                )
            )
        else:
            seen[target_id] = index
    return problems


def unknown_link_profile_problems(
    site_profiles: Mapping[str, object], defined: Iterable[str]
) -> list[Problem]:
    """Return one problem per site whose ``link_profile`` names no defined profile.

    ``site_profiles`` maps site id to its ``link_profile`` value (non-strings are skipped);
    ``defined`` are the profile names known (built-in and the file's). Paths are relative to
    the whole config: ``("sites", site_id, "link_profile")``.
    """
    known = sorted(set(defined))
    return [
        (
            ("sites", site_id, "link_profile"),
            f"unknown link profile {profile!r}; known: {', '.join(known)}",
        )
        for site_id, profile in site_profiles.items()
        if isinstance(profile, str) and profile not in known
    ]


def _check_site_id(v: str) -> str:
    if not _SITE_ID_RE.match(v):
        raise ValueError(
            f"site id {v!r} must be 1-32 characters of a-z, 0-9, '-' or '_', "
            "starting with a letter or digit"
        )
    return v


SiteId = Annotated[str, AfterValidator(_check_site_id)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_zone(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown IANA time zone {v!r}") from exc
    return v


class StatusPageMode(StrEnum):
    """Who may read the status page (``server.status_page``); changing anything needs a login."""

    PUBLIC = "public"
    PRIVATE = "private"


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
    status_page: StatusPageMode = Field(
        default=StatusPageMode.PUBLIC,
        description="public: anyone may read the status page; private: only logged-in users.",
    )

    evaluate_every_s: float = Field(
        default=5.0, gt=0, le=300, description="How often the state evaluator runs, seconds."
    )
    gateway_down_fraction: float = Field(
        default=0.5,
        gt=0,
        lt=1,
        description="A gateway is down when more than this fraction of its sites lose it.",
    )
    admin_token: str | None = Field(
        default=None, min_length=16, description="Bearer token for operator API calls."
    )
    admin_token_env: str | None = Field(
        default=None, description="Environment variable holding the operator token."
    )

    _zone = field_validator("time_zone")(classmethod(lambda cls, v: _check_zone(v)))

    @model_validator(mode="after")
    def _one_admin_token_source(self) -> ServerConfig:
        if self.admin_token is not None and self.admin_token_env is not None:
            raise ProblemsAt(
                [(("admin_token_env",), "give either admin_token or admin_token_env, not both")]
            )
        return self

    def resolve_admin_token(self) -> str | None:
        """Return the operator token (``admin_token`` or its variable); ``None`` if unset."""
        if self.admin_token is not None:
            return self.admin_token
        if self.admin_token_env is not None:
            return os.environ.get(self.admin_token_env) or None
        return None

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
    spool_max_results: int = Field(default=1_000_000, ge=100, le=100_000_000)
    spool_max_age_s: float = Field(default=604_800.0, ge=60, le=31_622_400)
    upload_budget_bytes_per_hour: int | None = Field(
        default=None, ge=10_000, description="Upload at most this many bytes an hour; None: no cap."
    )
    clock_offset_warn_s: float = Field(default=5.0, gt=0, le=86_400)
    listen: str | None = Field(
        default=None,
        description="host:port of the agent's local page and /metrics; None: not served.",
    )

    @field_validator("listen")
    @classmethod
    def _listen_is_host_port(cls, v: str | None) -> str | None:
        if v is not None:
            split_listen(v)
        return v


_LISTEN_RE = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>[0-9]{1,5})$"
)


def split_listen(value: str) -> tuple[str, int]:
    """Return ``(host, port)`` of a ``host:port`` or ``[v6]:port`` text; ValueError if not."""
    match = _LISTEN_RE.match(value)
    port = int(match["port"]) if match else 0
    if match is None or not 1 <= port <= 65535:
        raise ValueError(
            f"{value!r} is not host:port (e.g. 127.0.0.1:9108, 0.0.0.0:9108 or [::1]:9108) "
            "with a port from 1 to 65535"
        )
    return match["v6"] or match["host"], port


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
    failures_to_down: int | None = Field(
        default=None, ge=1, le=100, description="Failed rounds before DOWN; default 3."
    )
    successes_to_recover: int | None = Field(
        default=None, ge=1, le=100, description="Good rounds before recovery; default 2."
    )
    targets: list[TargetSpec] = Field(min_length=1)

    _zone = field_validator("time_zone")(
        classmethod(lambda cls, v: None if v is None else _check_zone(v))
    )

    @field_validator("targets")
    @classmethod
    def _target_checks(cls, v: list[TargetSpec]) -> list[TargetSpec]:
        problems = duplicate_target_id_problems([t.id for t in v])
        problems += [
            ((index, "keyword"), "keyword needs method GET: a HEAD response has no body")
            for index, t in enumerate(v)
            if isinstance(t, HttpTarget) and t.keyword is not None and t.method == "HEAD"
        ]
        if problems:
            raise ProblemsAt(problems)
        return v

    @model_validator(mode="after")
    def _one_token_source(self) -> SiteConfig:
        problems = token_source_problems(self.token is not None, self.token_env is not None)
        if problems:
            raise ProblemsAt(problems)
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
    sites: dict[SiteId, SiteConfig] = Field(min_length=1)
    notifications: NotificationsConfig = NotificationsConfig()

    _source: Path | None = PrivateAttr(default=None)
    _source_sha256: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _profiles_exist(self) -> Config:
        problems = unknown_link_profile_problems(
            {site_id: site.link_profile for site_id, site in self.sites.items()}, self.profiles
        )
        if problems:
            raise ProblemsAt(problems)
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

    @property
    def source_sha256(self) -> str | None:
        """The SHA-256 (hex) of the exact bytes this config was read from, if read from a file."""
        return self._source_sha256
