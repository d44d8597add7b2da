"""The agent's SQLite spool: queue order, acks, bounds with counted drops, durability."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest
from agent_testkit import T0, make_result, make_results, spool_now

from monitor.agent.spool import Spool, SpoolError


def test_put_peek_ack_keeps_results_until_acknowledged(tmp_path: Path) -> None:
    results = make_results(5)
    with Spool(tmp_path / "s.db", clock=spool_now) as spool:
        assert spool.put(results) == 5
        assert spool.backlog() == 5
        batch = spool.peek_batch(3)
        assert [r.result_id for r in batch] == [r.result_id for r in results[:3]]
        assert batch[0] == results[0]
        assert spool.backlog() == 5  # peeking takes nothing away
        assert spool.ack([r.result_id for r in batch]) == 3
        assert spool.backlog() == 2
        assert [r.result_id for r in spool.peek_batch(10)] == [r.result_id for r in results[3:]]
        assert spool.oldest_measured_at() == results[3].measured_at


def test_empty_spool_has_no_oldest_time_and_an_empty_batch(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db", clock=spool_now) as spool:
        assert spool.backlog() == 0
        assert spool.peek_batch(10) == []
        assert spool.oldest_measured_at() is None


def test_the_same_result_spooled_twice_is_stored_once(tmp_path: Path) -> None:
    r = make_result()
    with Spool(tmp_path / "s.db", clock=spool_now) as spool:
        assert spool.put([r]) == 1
        assert spool.put([r]) == 0
        assert spool.backlog() == 1


def test_over_max_results_the_oldest_are_dropped_and_counted_across_restarts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    results = make_results(150)
    with Spool(path, max_results=100, clock=spool_now) as spool:
        for r in results:  # one transaction each, as the scheduler writes them
            spool.put([r])
        assert spool.backlog() == 100
        assert spool.dropped_total == 50
    with Spool(path, max_results=100, clock=spool_now) as spool:
        assert spool.backlog() == 100
        counts = spool.counts()
        assert counts.dropped_total == 50
        assert counts.dropped_full_total == 50
        assert counts.dropped_age_total == 0
        kept = spool.peek_batch(1000)
        assert [r.result_id for r in kept] == [r.result_id for r in results[50:]]


def test_one_put_larger_than_the_bound_keeps_its_newest_results(tmp_path: Path) -> None:
    results = make_results(150)
    with Spool(tmp_path / "s.db", max_results=100, clock=spool_now) as spool:
        spool.put(results)
        assert spool.dropped_total == 50
        assert spool.peek_batch(1)[0].result_id == results[50].result_id


def test_results_older_than_max_age_are_dropped_and_counted(tmp_path: Path) -> None:
    now = T0 + timedelta(days=10)
    old = [make_result(measured_at=T0 + timedelta(days=d)) for d in (0, 1, 2)]
    fresh = make_result(measured_at=now - timedelta(hours=1))
    with Spool(tmp_path / "s.db", max_age_s=7 * 86_400, clock=lambda: now) as spool:
        spool.put([*old, fresh])
        counts = spool.counts()
        assert counts.backlog == 1
        assert counts.dropped_age_total == 3
        assert spool.peek_batch(10) == [fresh]


def test_a_smaller_bound_at_reopen_is_enforced_at_once(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Spool(path, clock=spool_now) as spool:
        spool.put(make_results(30))
    with Spool(path, max_results=10, clock=spool_now) as spool:
        assert spool.backlog() == 10
        assert spool.dropped_total == 20


def test_a_second_agent_on_the_same_spool_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with (
        Spool(path, clock=spool_now),
        pytest.raises(SpoolError, match="in use by another agent process"),
    ):
        Spool(path, clock=spool_now)
    with Spool(path, clock=spool_now) as spool:  # released on close
        assert spool.backlog() == 0


def test_rejected_results_leave_the_queue_with_their_reason_and_can_be_requeued(
    tmp_path: Path,
) -> None:
    results = make_results(4)
    with Spool(tmp_path / "s.db", clock=spool_now) as spool:
        spool.put(results)
        assert spool.reject([results[1].result_id], "HTTP 422: target_id: unknown target") == 1
        assert spool.backlog() == 3
        counts = spool.counts()
        assert (counts.rejected_total, counts.rejected_waiting) == (1, 1)
        assert spool.rejected_reasons() == [
            (results[1].result_id, "HTTP 422: target_id: unknown target")
        ]
        assert results[1].result_id not in {r.result_id for r in spool.peek_batch(10)}
        assert spool.requeue_rejected() == 1
        assert spool.backlog() == 4
        assert spool.counts().rejected_waiting == 0


def test_a_stored_row_that_no_longer_parses_is_moved_to_rejected_not_lost(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    good = make_result()
    with Spool(path, clock=spool_now) as spool:
        spool.put([good])
        raw = sqlite3.connect(path)
        raw.execute(
            "INSERT INTO results (result_id, measured_at_us, body) VALUES (?, ?, ?)",
            ("00000000-0000-4000-8000-000000000000", int(T0.timestamp() * 1e6), '{"not": 1}'),
        )
        raw.commit()
        raw.close()
    with Spool(path, clock=spool_now) as spool:
        assert spool.backlog() == 2
        assert spool.peek_batch(10) == [good]
        assert spool.backlog() == 1
        [(rid, reason)] = spool.rejected_reasons()
        assert rid == "00000000-0000-4000-8000-000000000000"
        assert reason.startswith("unreadable in the spool")


def test_a_file_that_is_not_sqlite_gives_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SpoolError, match="cannot be opened as an SQLite spool"):
        Spool(path, clock=spool_now)


_WRITER = textwrap.dedent(
    """
    import sys, uuid
    from datetime import UTC, datetime
    from pathlib import Path
    from monitor.agent.spool import Spool
    from monitor.wire import ResultIn

    spool = Spool(Path(sys.argv[1]))
    n = 0
    while True:
        r = ResultIn(result_id=str(uuid.uuid4()), target_id="gw", kind="tcp", status="up",
                     measured_at=datetime.now(UTC), duration_s=0.001, rtt_s=0.001)
        spool.put([r])
        n += 1
        print(n, flush=True)
    """
)


def test_every_committed_result_survives_kill_9_of_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    committed = 0
    deadline = time.monotonic() + 60
    try:
        while committed < 300 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            committed = int(line)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        # Lines it printed before it died are still in the pipe: the last is its last commit.
        for line in proc.stdout.read().split():
            committed = int(line)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert committed >= 300, "the writer did not get going"
    assert proc.returncode == -signal.SIGKILL
    with Spool(path, clock=spool_now) as spool:
        # Every put it reported is there, plus at most one committed but not yet reported.
        assert committed <= spool.backlog() <= committed + 1
        assert len(spool.peek_batch(10_000)) == spool.backlog()
