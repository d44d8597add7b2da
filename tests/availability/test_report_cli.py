"""``linkwatch report`` and ``linkwatch maintenance`` against a real database."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alerting_testkit import World, migrated_world, result
from typer.testing import CliRunner

from monitor.cli import _register_subcommands
from monitor.cli import app as cli
from monitor.config_loader import load_config

START = datetime(2025, 3, 10, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    _register_subcommands()
    return CliRunner()


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[tuple[World, Path]]:
    path = tmp_path / "linkwatch.yaml"
    path.write_text(
        f"""
server:
  database_url: "{db_url}"
sites:
  bridge1:
    name: Friendship Bridge I
    name_lo: ຂົວມິດຕະພາບ 1
    token: token-bridge1-0123456789
    targets:
      - {{kind: icmp, id: gw, host: 192.0.2.1, count: 3, interval_s: 60}}
  wattay:
    name: Wattay Airport
    time_zone: Asia/Bangkok
    token: token-wattay-0123456789
    targets:
      - {{kind: icmp, id: gw, host: 192.0.2.1, count: 3, interval_s: 60}}
""",
        encoding="utf-8",
    )
    with migrated_world(db_url, load_config(path)) as w:
        yield w, path


def test_the_report_prints_each_site_and_writes_the_csv(
    runner: CliRunner, world: tuple[World, Path], tmp_path: Path
) -> None:
    w, path = world
    # bridge1: 10 hours measured on 10 March, 1 hour of it down; wattay: nothing.
    rounds = [
        result("gw", START + timedelta(minutes=m), "down" if 120 <= m < 180 else "up")
        for m in range(600)
    ]
    w.clock.set(START + timedelta(hours=11))
    w.upload("bridge1", rounds)
    w.run_until_caught_up()
    out = tmp_path / "march.csv"
    done = runner.invoke(
        cli, ["report", "--config", str(path), "--month", "2025-03", "--csv", str(out)]
    )
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert lines[0].startswith("Availability 2025-03")
    bridge = next(line for line in lines if line.startswith("bridge1"))
    # 1 h down in 10 h 00 min 30 s measured (the last round stands for 1.5 intervals).
    assert f"{(1 - 3600 / 36030) * 100:.4f} %" == "90.0083 %"
    assert "90.0083 %" in bridge and "1 h 00 min" in bridge
    assert "no data" in next(line for line in lines if line.startswith("wattay"))
    with out.open(encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    site = next(r for r in table if r["site_id"] == "bridge1" and r["target_id"] == "")
    assert (site["site_name"], site["down_s"], site["availability"]) == (
        "Friendship Bridge I",
        "3600",
        "0.900083",
    )
    wattay = next(r for r in table if r["site_id"] == "wattay" and r["target_id"] == "")
    assert wattay["availability"] == "" and wattay["zone"] == "Asia/Bangkok"
    assert wattay["start_utc"] == "2025-02-28T17:00:00+00:00"


def test_a_bad_month_is_one_sentence_naming_the_option(
    runner: CliRunner, world: tuple[World, Path]
) -> None:
    _, path = world
    done = runner.invoke(cli, ["report", "--config", str(path), "--month", "March"])
    assert done.exit_code == 2
    assert (
        done.output.strip()
        == "linkwatch: --month must be a calendar month YYYY-MM, e.g. 2026-10 (got 'March')"
    )


def test_maintenance_windows_are_added_listed_and_deleted_from_the_cli(
    runner: CliRunner, world: tuple[World, Path]
) -> None:
    _, path = world
    add = [
        "maintenance", "add", "--config", str(path), "--title", "fibre splice",
        "--site", "bridge1", "--start", "2025-01-15 02:30", "--end", "03:30",
        "--repeat", "daily", "--zone", "Europe/Berlin",
    ]  # fmt: skip
    done = runner.invoke(cli, add)
    assert done.exit_code == 0, done.output
    assert done.output.startswith("added maintenance window 1: 'fibre splice' on bridge1")
    listed = runner.invoke(cli, ["maintenance", "list", "--config", str(path)])
    assert listed.exit_code == 0 and "Europe/Berlin, daily; next " in listed.output
    bad = runner.invoke(cli, [*add[:9], "half past two", *add[10:]])
    assert bad.exit_code == 2
    assert (
        bad.output.strip()
        == "linkwatch: --start must be local time YYYY-MM-DD HH:MM (got 'half past two')"
    )
    nowhere = runner.invoke(cli, [*add[:7], "nowhere", *add[8:]])
    assert nowhere.exit_code == 2
    assert (
        nowhere.output.strip()
        == "linkwatch: --site: there is no site 'nowhere' in the configuration"
    )
    assert runner.invoke(cli, ["maintenance", "delete", "--config", str(path), "1"]).exit_code == 0
    again = runner.invoke(cli, ["maintenance", "delete", "--config", str(path), "1"])
    assert again.exit_code == 1 and "there is no maintenance window 1" in again.output
