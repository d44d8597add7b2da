"""The lab's pure parts: addressing plan, echo replies, seeded decisions, truth lines."""

from __future__ import annotations

import math
import socket
import statistics
import struct
from itertools import pairwise
from pathlib import Path

import pytest

from monitor.lab.echo import echo_reply_v4, echo_reply_v6, site_index_v4, site_index_v6
from monitor.lab.impairment import (
    SITE_ORDER,
    LabError,
    LinkImpairment,
    default_impairments,
    load_impairments,
    merge_impairments,
)
from monitor.lab.links import SiteLink
from monitor.lab.topology import (
    MAX_BULK_TARGETS,
    bulk_targets,
    check_prefix,
    cut_commands,
    make_site,
    site_commands,
    site_index_of,
)
from monitor.lab.truth import parse_truth_line, read_truth, truth_line
from probes.icmp.packets import build_echo_request, checksum


def test_site_addresses_follow_the_plan() -> None:
    site = make_site("lw", "pkz", 5)
    assert (site.namespace, site.gw_device, site.device) == ("lw-pkz", "lw-pkz", "lw-uplink")
    assert (site.address, site.gateway, site.lan) == ("10.200.5.2", "10.200.5.1", "10.200.69.0/24")
    assert (site.address6, site.gateway6) == ("fd00:200:0:5::2", "fd00:200:0:5::1")
    assert site.lan_host(9) == "10.200.69.9"
    assert (site.gw_mac, site.mac) == ("02:4c:77:00:05:01", "02:4c:77:00:05:02")


def test_sites_are_numbered_in_the_order_of_sites_md() -> None:
    assert SITE_ORDER == ("ftb2", "ftb3", "ftb4", "lpq", "pkz", "dsv", "btn")
    assert list(default_impairments()) == list(SITE_ORDER)


def test_every_lab_address_is_in_10_200_or_the_ula_range() -> None:
    for index, site_id in enumerate(SITE_ORDER, start=1):
        site = make_site("lw", site_id, index)
        for line in site_commands(site):
            for word in line.split():
                if word[:1].isdigit() or word.startswith("fd"):
                    assert word.startswith(("10.200.", "fd00:200:")) or "lladdr" in line, line
        assert "default" not in " ".join(site_commands(site))


def test_site_of_an_address() -> None:
    assert site_index_of("10.200.3.2") == 3
    assert site_index_of("10.200.67.40") == 3
    assert site_index_of("fd00:200:0:3::2") == 3
    assert site_index_of("10.200.128.5") is None
    assert site_index_of("192.0.2.1") is None
    assert site_index_v4(socket.inet_aton("10.200.7.2")) == 7
    assert site_index_v4(socket.inet_aton("10.200.71.9")) == 7
    assert site_index_v4(socket.inet_aton("10.200.0.1")) == 0
    assert site_index_v6(socket.inet_pton(socket.AF_INET6, "fd00:200:0:6::2")) == 6
    assert site_index_v6(socket.inet_pton(socket.AF_INET6, "fd00:201:0:6::2")) == 0


def test_bulk_targets_skip_network_and_broadcast_octets() -> None:
    targets = bulk_targets(300)
    assert targets[0] == "10.200.128.1"
    assert targets[253] == "10.200.128.254"
    assert targets[254] == "10.200.129.1"
    assert len(set(targets)) == 300
    with pytest.raises(ValueError):
        bulk_targets(MAX_BULK_TARGETS + 1)


def test_prefix_must_be_short_and_plain() -> None:
    assert check_prefix("lw") == "lw"
    for bad in ("", "LW", "lw-x", "9lw", "toolongprefix"):
        with pytest.raises(ValueError):
            check_prefix(bad)


def test_cut_of_one_family_blackholes_only_that_family() -> None:
    site = make_site("lw", "ftb4", 3)
    assert cut_commands(site, None) == ["link set lw-ftb4 down"]
    assert cut_commands(site, 6) == ["route replace blackhole fd00:200:0:3::2/128 metric 1024"]
    assert all("10.200." in line for line in cut_commands(site, 4))
    with pytest.raises(ValueError):
        cut_commands(site, 5)


def test_echo_reply_swaps_addresses_and_keeps_a_valid_checksum() -> None:
    for seq in (0, 1, 0x7FF, 0xF7FF, 0xFFFF):
        icmp = build_echo_request(4, 0xBEEF, seq, bytes(range(8)), 56)
        ip = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(icmp),
            0,
            0,
            64,
            1,
            0,
            socket.inet_aton("10.200.1.2"),
            socket.inet_aton("10.200.128.9"),
        )
        built = echo_reply_v4(ip + icmp)
        assert built is not None
        reply, src, dst = built
        assert reply[12:16] == socket.inet_aton("10.200.128.9")
        assert reply[16:20] == socket.inet_aton("10.200.1.2")
        body = reply[20:]
        assert body[0] == 0
        assert body[4:] == icmp[4:]
        assert checksum(body) == 0, seq
        assert (src, dst) == (ip[12:16], ip[16:20])


def test_only_echo_requests_get_replies() -> None:
    reply_packet = build_echo_request(4, 1, 1, bytes(8), 8)
    not_request = b"\x45" + bytes(19) + b"\x00" + reply_packet[1:]
    assert echo_reply_v4(not_request) is None
    assert echo_reply_v6(b"\x81" + bytes(15)) is None
    v6 = echo_reply_v6(b"\x80\x00\x12\x34\x00\x07\x00\x09payload!")
    assert v6 == b"\x81\x00\x00\x00\x00\x07\x00\x09payload!"


def test_the_same_seed_drops_the_same_requests() -> None:
    impairment = LinkImpairment(delay_s=0.02, jitter_s=0.005, loss=0.1)
    first = SiteLink("ftb2", impairment, 7, 0)
    second = SiteLink("ftb2", impairment, 7, 0)
    other_delay = SiteLink("ftb2", impairment.model_copy(update={"delay_s": 0.5}), 7, 0)
    decisions = [first.decide(i) for i in range(2000)]
    assert decisions == [second.decide(i) for i in range(2000)]
    assert [d[0] for d in decisions] == [other_delay.decide(i)[0] for i in range(2000)]
    dropped = sum(d[0] == "loss" for d in decisions)
    assert 140 <= dropped <= 260  # 10 % of 2000, seeded: a fixed number in this range


def test_jitter_is_the_mean_absolute_difference_of_consecutive_holds() -> None:
    impairment = LinkImpairment(delay_s=0.1, jitter_s=0.01, loss=0.0)
    link = SiteLink("dsv", impairment, 1, 0)
    holds = [link.decide(i)[1] for i in range(20_000)]
    jitter = statistics.fmean(abs(b - a) for a, b in pairwise(holds))
    assert jitter == pytest.approx(0.01, rel=0.05)
    assert statistics.fmean(holds) == pytest.approx(0.1, rel=0.01)
    assert impairment.sigma_s == pytest.approx(0.01 * math.sqrt(math.pi) / 2)


def test_outages_drop_everything_while_they_last() -> None:
    impairment = LinkImpairment(loss=0.0, outages_per_day=86_400, outage_mean_s=1.0)
    link = SiteLink("btn", impairment, 3, 0)
    reasons = [link.decide(i * 10_000_000)[0] for i in range(10_000)]  # 100 s, 10 ms apart
    assert "outage" in reasons
    assert None in reasons
    assert set(reasons) == {None, "outage"}


def test_impairment_overrides_change_only_the_keys_given() -> None:
    merged = merge_impairments({"ftb2": {"loss": 0.25}, "extra": {"delay_s": 0.3}})
    assert merged["ftb2"].loss == 0.25
    assert merged["ftb2"].delay_s == default_impairments()["ftb2"].delay_s
    assert merged["extra"].delay_s == 0.3
    assert list(merged)[-1] == "extra"


def test_a_bad_impairment_is_one_sentence_naming_site_and_key() -> None:
    with pytest.raises(LabError, match=r"^impairment ftb2\.loss: Input should be less"):
        merge_impairments({"ftb2": {"loss": 2}})
    with pytest.raises(LabError, match=r"impairment btn\.delay: Extra inputs"):
        merge_impairments({"btn": {"delay": 1}})


def test_impairments_file_is_read_and_checked(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("ftb2: {delay_s: 0.05, loss: 0.1}\n", encoding="utf-8")
    assert load_impairments(good)["ftb2"].delay_s == 0.05
    bad = tmp_path / "bad.yaml"
    bad.write_text("- ftb2\n", encoding="utf-8")
    with pytest.raises(LabError, match="must map site ids to mappings"):
        load_impairments(bad)
    with pytest.raises(LabError, match="cannot read the impairments file"):
        load_impairments(tmp_path / "missing.yaml")


def test_truth_lines_round_trip_and_partial_lines_wait(tmp_path: Path) -> None:
    answered = truth_line(5, "ftb2", 4, "10.200.1.2", "10.200.0.1", 7, 9, None, 0.0123, 0.012)
    dropped = truth_line(6, "ftb2", 4, "10.200.1.2", "10.200.0.1", 7, 10, "loss", None, None)
    record = parse_truth_line(answered)
    assert (record.dropped, record.hold_s, record.plan_s, record.seq) == (False, 0.0123, 0.012, 9)
    assert parse_truth_line(dropped).why == "loss"
    path = tmp_path / "truth.jsonl"
    path.write_text(answered + dropped[:20], encoding="utf-8")
    records, offset = read_truth(path)
    assert len(records) == 1
    assert offset == len(answered)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(dropped[20:])
    more, _ = read_truth(path, offset)
    assert [r.why for r in more] == ["loss"]
