"""Target specifications: what to probe and how, one pydantic model per probe kind.

These models are what the configuration file holds under ``sites.<id>.targets``; they come
from outside, so they are strict (unknown keys refused) and validated. The probes read them;
they never hold state.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TARGET_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_TARGET_ID_RE = re.compile(TARGET_ID_PATTERN)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


IpFamily = Literal["ipv4", "ipv6", "prefer_ipv6", "prefer_ipv4"]


class _TargetBase(_Strict):
    id: str = Field(description="Stable id, unique within the site; used in URLs and labels.")
    name: str | None = Field(default=None, description="Human name; defaults to the id.")
    interval_s: float = Field(default=30.0, gt=0, le=86_400)
    timeout_s: float = Field(default=5.0, gt=0, le=300)
    # State thresholds over the site's link profile and hysteresis (monitor.alerting); None:
    # the site's value.
    rtt_degraded_s: float | None = Field(default=None, gt=0)
    packet_loss_degraded: float | None = Field(default=None, ge=0, le=1)
    jitter_degraded_s: float | None = Field(default=None, gt=0)
    failures_to_down: int | None = Field(default=None, ge=1, le=100)
    successes_to_recover: int | None = Field(default=None, ge=1, le=100)
    # Retry rounds (monitor.agent.scheduler): after a DOWN round, the next rounds come this
    # many seconds apart until failures_to_down rounds failed in a row; None: no retries.
    retry_interval_s: float | None = Field(default=None, gt=0, le=86_400)

    @field_validator("id")
    @classmethod
    def _id_shape(cls, v: str) -> str:
        if not _TARGET_ID_RE.match(v):
            raise ValueError(
                "must be 1-63 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"
            )
        return v

    @model_validator(mode="after")
    def _retry_within_interval(self) -> _TargetBase:
        if self.retry_interval_s is not None and self.retry_interval_s > self.interval_s:
            raise ValueError(
                f"retry_interval_s {self.retry_interval_s:g} is longer than interval_s "
                f"{self.interval_s:g}; retries come at most interval_s apart"
            )
        return self

    @property
    def display_name(self) -> str:
        return self.name or self.id


class IcmpTarget(_TargetBase):
    """An ICMP echo round: ``count`` requests ``spacing_s`` apart, each waited ``timeout_s``."""

    kind: Literal["icmp"] = "icmp"
    host: str = Field(min_length=1)
    count: int = Field(default=20, ge=1, le=1000)
    spacing_s: float = Field(default=0.5, ge=0.0, le=60)
    payload_bytes: int = Field(default=56, ge=16, le=1400)
    ip_family: IpFamily = "prefer_ipv4"

    @model_validator(mode="after")
    def _round_fits_interval(self) -> IcmpTarget:
        round_s = (self.count - 1) * self.spacing_s + self.timeout_s
        if round_s > self.interval_s:
            raise ValueError(
                f"a round takes up to {round_s:g} s ((count-1) x spacing_s + timeout_s), "
                f"longer than interval_s {self.interval_s:g}"
            )
        if self.retry_interval_s is not None and round_s > self.retry_interval_s:
            raise ValueError(
                f"a round takes up to {round_s:g} s ((count-1) x spacing_s + timeout_s), "
                f"longer than retry_interval_s {self.retry_interval_s:g}"
            )
        return self


class TcpTarget(_TargetBase):
    """A TCP connect to ``host:port``; UP when the handshake completes within ``timeout_s``."""

    kind: Literal["tcp"] = "tcp"
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    ip_family: IpFamily = "prefer_ipv4"


class HttpTarget(_TargetBase):
    """An HTTP(S) request; judged on the final response after redirects (when followed)."""

    kind: Literal["http"] = "http"
    url: str = Field(pattern=r"^https?://", description="http:// or https:// URL")
    method: Literal["GET", "HEAD"] = "GET"
    valid_status_codes: list[int] = Field(default_factory=lambda: list(range(200, 300)))
    follow_redirects: bool = True
    keyword: str | None = Field(default=None, description="Body must contain this text.")
    verify_tls: bool = True
    ip_family: IpFamily = "prefer_ipv4"


class DnsTarget(_TargetBase):
    """A DNS query for ``query_name``/``record_type`` sent to the server ``host:port``."""

    kind: Literal["dns"] = "dns"
    host: str = Field(min_length=1, description="The DNS server to ask (an IP address).")
    port: int = Field(default=53, ge=1, le=65535)
    query_name: str = Field(min_length=1)
    record_type: Literal["A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT"] = "A"
    transport: Literal["udp", "tcp"] = "udp"
    expect_rcode: Literal["NOERROR", "NXDOMAIN"] = "NOERROR"


TargetSpec = Annotated[IcmpTarget | TcpTarget | HttpTarget | DnsTarget, Field(discriminator="kind")]
