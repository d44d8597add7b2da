"""Messages in English and Lao, site names in Lao script, times in the site's zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alert_testkit import SITE_NAME_LO, down_event, recovery_event, render_for_tests

from monitor.alerting.channels.alertmanager import alertmanager_alert, default_alert_name
from monitor.alerting.channels.base import Notification, NotificationKind
from monitor.alerting.channels.webhook import webhook_payload
from monitor.alerting.outbox import event_id_for, notification_for

START = datetime(2025, 3, 1, 7, 0, tzinfo=UTC)  # 14:00 in Vientiane


def test_a_down_alert_reads_in_english_then_lao_with_local_times_and_the_event_id() -> None:
    notification = notification_for(down_event(7, START))
    message = render_for_tests(notification)
    assert message.title_en == "PROBLEM: Friendship Bridge I: gw-tcp is DOWN"
    assert message.title_lo == f"ມີບັນຫາ: {SITE_NAME_LO}: gw-tcp ຂາດການເຊື່ອມຕໍ່"
    assert message.subject == f"[Linkwatch] {message.title_en} / {message.title_lo}"
    assert message.body.splitlines() == [
        "PROBLEM: Friendship Bridge I: gw-tcp is DOWN",
        "",
        "Site: Friendship Bridge I (bridge1)",
        "Target: gw-tcp",
        "Since: 2025-03-01 14:00:00 +07 (Asia/Vientiane)",
        "Event at: 2025-03-01 14:00:00 +07 (Asia/Vientiane)",
        "Incident: 7",
        "",
        f"ມີບັນຫາ: {SITE_NAME_LO}: gw-tcp ຂາດການເຊື່ອມຕໍ່",
        "",
        f"ສະຖານທີ່: {SITE_NAME_LO} (bridge1)",
        "ເປົ້າໝາຍ: gw-tcp",
        "ຕັ້ງແຕ່: 2025-03-01 14:00:00 +07 (Asia/Vientiane)",
        "ເວລາເກີດເຫດ: 2025-03-01 14:00:00 +07 (Asia/Vientiane)",
        "ເຫດການ: 7",
        "",
        f"ref {notification.event_id}",
    ]


def test_a_recovery_says_resolved_and_how_long_the_problem_lasted() -> None:
    notification = notification_for(recovery_event(7, START, START + timedelta(minutes=65)))
    message = render_for_tests(notification)
    assert notification.resolved
    assert message.title_en.startswith("RESOLVED: ")
    assert "Duration: 1 h 5 min" in message.body
    assert "ໄລຍະເວລາ: 1 ຊົ່ວໂມງ 5 ນາທີ" in message.body


def test_the_event_id_is_derived_from_the_key_alone() -> None:
    assert notification_for(down_event(7, START)).event_id == event_id_for("7:target_down")
    assert event_id_for("7:target_down") != event_id_for("7:target_recovered")


def test_a_problem_and_its_recovery_carry_the_same_alertmanager_labels() -> None:
    down = notification_for(down_event(7, START))
    up = notification_for(recovery_event(7, START, START + timedelta(minutes=3)))
    firing = alertmanager_alert(down, render_for_tests(down), alert_name=default_alert_name(down))
    resolved = alertmanager_alert(up, render_for_tests(up), alert_name=default_alert_name(up))
    assert firing["labels"] == resolved["labels"]
    assert resolved["endsAt"] == "2025-03-01T07:03:00Z"
    assert firing["endsAt"] > resolved["endsAt"]  # a firing alert is not left to time out


def test_the_webhook_body_holds_both_languages_and_the_event_id() -> None:
    notification = Notification(
        event_id=event_id_for("k"),
        key="k",
        kind=NotificationKind.REMINDER,
        alert_kind="site_unreachable",
        resolved=False,
        incident_id=3,
        site_id="bridge1",
        target_id=None,
        started_at=START,
        occurred_at=START + timedelta(hours=1),
        summary_en="Friendship Bridge I: the agent is silent",
        summary_lo=f"{SITE_NAME_LO}: ເອເຈັນບໍ່ສົ່ງຂໍ້ມູນ",
        reminder=1,
    )
    payload = webhook_payload(notification, render_for_tests(notification))
    assert payload["event_id"] == notification.event_id
    assert payload["summary"] == {"en": notification.summary_en, "lo": notification.summary_lo}
    assert payload["title"]["en"].startswith("REMINDER 1, not acknowledged: ")
    assert payload["title"]["lo"].startswith("ແຈ້ງເຕືອນຊ້ຳຄັ້ງທີ 1")
    assert payload["target"] is None and payload["site"] == "bridge1"
    assert payload["started_at"] == "2025-03-01T07:00:00+00:00"
