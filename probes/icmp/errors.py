"""The ICMP engine's errors: monitor-side failures, never "target down"."""

from __future__ import annotations


class IcmpEngineError(Exception):
    """The ICMP engine cannot measure (a monitor-side failure); ``str()`` is one sentence."""


class IcmpPermissionError(IcmpEngineError):
    """No ICMP socket could be opened; the message says what the operator must change."""


class IcmpFamilyUnavailableError(IcmpEngineError):
    """The probe host cannot open an ICMP socket for this address family (e.g. no IPv6)."""
