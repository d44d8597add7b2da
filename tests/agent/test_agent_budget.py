"""The upload budget: a sliding hour that never carries more than the budget."""

from __future__ import annotations

from datetime import timedelta

import pytest
from agent_testkit import T0

from monitor.agent.budget import UploadBudget


def test_bytes_leave_the_window_one_hour_after_they_were_sent() -> None:
    budget = UploadBudget(10_000)
    budget.record(T0, 4000)
    budget.record(T0 + timedelta(minutes=30), 5000)
    assert budget.available_bytes(T0 + timedelta(minutes=59)) == 1000
    assert budget.available_bytes(T0 + timedelta(minutes=60)) == 5000
    assert budget.available_bytes(T0 + timedelta(minutes=90)) == 10_000
    assert budget.window_empty(T0 + timedelta(minutes=90))


def test_wait_is_until_enough_old_bytes_have_left_the_window() -> None:
    budget = UploadBudget(10_000)
    budget.record(T0, 4000)
    budget.record(T0 + timedelta(minutes=30), 5000)
    now = T0 + timedelta(minutes=40)
    assert budget.wait_s(now, 1000) == 0.0
    assert budget.wait_s(now, 3000) == pytest.approx(20 * 60)  # the first 4000 leave at 60 min
    assert budget.wait_s(now, 8000) == pytest.approx(50 * 60)  # both must leave
    assert budget.wait_s(now, 50_000) == pytest.approx(50 * 60)  # more than the budget: empty


def test_history_from_before_a_restart_counts_and_older_history_does_not() -> None:
    budget = UploadBudget(10_000, [(T0 - timedelta(minutes=90), 9000), (T0, 7000)])
    assert budget.used_bytes(T0 + timedelta(minutes=1)) == 7000


def test_a_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        UploadBudget(0)
