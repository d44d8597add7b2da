"""The spool's store-and-forward additions: newest per target, an upload log, the offset,
and spools written before them."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from agent_testkit import T0, make_result, spool_now

from monitor.agent.spool import Spool


def test_the_newest_waiting_result_of_each_target_is_found_and_old_news_left_out(
    tmp_path: Path,
) -> None:
    with Spool(tmp_path / "s.db", clock=spool_now) as spool:
        results = [make_result(i, target_id=f"gw-{i % 3}") for i in range(30)]
        spool.put(results)
        newest = {r.target_id: r for r in spool.peek_newest()}
        assert newest == {r.target_id: r for r in results[-3:]}
        known = {"gw-0": int(results[27].measured_at.timestamp() * 1_000_000)}
        assert {r.target_id for r in spool.peek_newest(known)} == {"gw-1", "gw-2"}


def test_the_oldest_waiting_time_can_leave_out_the_batch_being_sent(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db", clock=spool_now) as spool:
        results = [make_result(i) for i in range(5)]
        spool.put(results)
        assert spool.oldest_measured_at() == T0
        besides = {r.result_id for r in results[:2]}
        assert spool.oldest_measured_at(besides=besides) == T0 + timedelta(seconds=2)
        assert spool.oldest_measured_at(besides={r.result_id for r in results}) is None


def test_the_clock_offset_and_the_upload_log_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Spool(path, clock=spool_now) as spool:
        assert spool.clock_offset_s() is None
        spool.put([make_result(0)])
        spool.ack([make_result(0).result_id], clock_offset_s=-3.25)
        spool.record_upload(T0, 1500)
        spool.record_upload(T0 + timedelta(minutes=90), 2500)  # the first leaves the log
    with Spool(path, clock=spool_now) as spool:
        assert spool.clock_offset_s() == -3.25
        assert spool.recent_uploads() == [(T0 + timedelta(minutes=90), 2500)]


def test_a_spool_written_before_the_target_column_gets_it_at_open(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE results (seq INTEGER PRIMARY KEY AUTOINCREMENT, result_id TEXT NOT NULL "
        "UNIQUE, measured_at_us INTEGER NOT NULL, body TEXT NOT NULL);"
    )
    results = [make_result(i, target_id=f"gw-{i % 2}") for i in range(4)]
    old.executemany(
        "INSERT INTO results (result_id, measured_at_us, body) VALUES (?, ?, ?)",
        [
            (r.result_id, int(r.measured_at.timestamp() * 1_000_000), r.model_dump_json())
            for r in results
        ],
    )
    old.commit()
    old.close()
    with Spool(path, clock=spool_now) as spool:
        assert spool.backlog() == 4
        assert {r.target_id: r for r in spool.peek_newest()} == {
            "gw-0": results[2],
            "gw-1": results[3],
        }
        assert spool.peek_batch(10) == results
