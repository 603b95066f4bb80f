"""The clinician console in real headless Chromium against the real console process, with a few hundred escalations."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from bot.escalation.store import LEVELS, EscalationStore, escalations, utc_now
from bot.settings import PROJECT_ROOT
from tests.escalation.receivers import free_port
from tests.servers import running_services, server_environment, write_console_users

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "console-browser-password"
NOTE = "Load test traffic, not a person"
# 2024-11-28 09:00:00 UTC, as Rasa stamps events (epoch seconds).
RASA_TIMESTAMP = 1732784400.0
CATEGORIES = ("suicide", "self_harm", "medical_emergency", "acute_crisis")
OPEN_ESCALATIONS = 280
TEST_TRAFFIC = 40
PAGE_SIZE = 50
SCREENSHOT = PROJECT_ROOT / "results" / "console-list.png"


@dataclass(frozen=True)
class Console:
    """The running console and the database it reads."""

    url: str
    store: EscalationStore
    timed_id: str


def _populate(store: EscalationStore) -> str:
    """Raise a few hundred escalations of every level, one minute apart, some from a load test."""
    levels = itertools.cycle(LEVELS)
    categories = itertools.cycle(CATEGORIES)
    created = []
    for number in range(OPEN_ESCALATIONS):
        channel = "rest" if number % 7 == 3 and len(created) < 200 else "socketio"
        escalation = store.create_escalation(f"conv-{number}", channel, "risk", next(levels), next(categories), [])
        created.append(escalation.id)
    timed = store.create_escalation(
        "conv-timed",
        "socketio",
        "human_request",
        "low",
        None,
        [
            {"sender": "user", "text": "Can I talk to someone?", "timestamp": RASA_TIMESTAMP},
            {"sender": "bot", "text": "I will ask the care team.", "timestamp": RASA_TIMESTAMP + 1},
        ],
    )
    created.append(timed.id)
    now = utc_now()
    with store._engine.begin() as conn:  # noqa: SLF001 - test-only time travel
        for minutes, escalation_id in enumerate(reversed(created)):
            conn.execute(
                escalations.update()
                .where(escalations.c.id == escalation_id)
                .values(created_at=now - timedelta(minutes=minutes))
            )
    for escalation_id in created[:20]:
        store.resolve(escalation_id, "dr_test", "handled earlier")
    return timed.id


def _open(store: EscalationStore, **where: str) -> list:
    return [
        item
        for item in store.list_escalations(status="open")
        if all(getattr(item, name) == value for name, value in where.items())
    ]


def _triage(items: list) -> list[str]:
    rank = {level: position for position, level in enumerate(LEVELS)}
    return [item.id for item in sorted(items, key=lambda item: (rank[item.level], item.created_at, item.id))]


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    workdir: Path = tmp_path_factory.mktemp("console-browser")
    port = free_port()
    users = write_console_users(workdir, PASSWORD)
    env = server_environment(
        workdir,
        token="console-browser-token",
        rasa_port=free_port(),
        action_port=free_port(),
        console_port=port,
        CONSOLE_USERS_FILE=str(users),
        CONSOLE_SECRET="console-browser-secret-" + "y" * 32,
    )
    store = EscalationStore(env["ESCALATION_DB_URL"])
    try:
        timed_id = _populate(store)
        with running_services(env, only=["console"], timeout=120):
            yield Console(url=f"http://127.0.0.1:{port}", store=store, timed_id=timed_id)
    finally:
        store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium).")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _signed_in_page(browser: Browser, console: Console, timezone_id: str = "Europe/London") -> Iterator[Page]:
    context = browser.new_context(timezone_id=timezone_id, locale="en-US")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(f"{console.url}/console")
        page.get_by_label("Username").fill("dr_test")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Escalations")).to_be_visible()
        yield page
    finally:
        context.close()
    assert errors == [], "the page raised script errors"


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    yield from _signed_in_page(browser, console)


def _row_ids(page: Page) -> list[str]:
    return page.locator("#escalation-rows tr").evaluate_all("(rows) => rows.map((row) => row.dataset.id)")


@pytest.mark.parametrize(
    ("timezone_id", "shown"),
    [
        ("America/New_York", "Nov 28, 2024, 04:00:00 AM EST"),
        ("Asia/Tokyo", "Nov 28, 2024, 06:00:00 PM GMT+9"),
    ],
)
def test_message_times_are_shown_in_the_reader_time_zone(
    browser: Browser, console: Console, timezone_id: str, shown: str
) -> None:
    for page in _signed_in_page(browser, console, timezone_id):
        page.goto(f"{console.url}/console/escalations/{console.timed_id}")
        first = page.locator("#transcript time").first
        expect(first).to_have_text(shown)
        expect(first).to_have_attribute("datetime", "2024-11-28T09:00:00+00:00")
        expect(page.locator("#transcript")).to_contain_text("Can I talk to someone?")


def test_the_queue_counts_and_the_oldest_wait_are_at_the_top(page: Page, console: Console) -> None:
    waiting = _open(console.store)
    by_level = {level: sum(1 for item in waiting if item.level == level) for level in LEVELS}
    expect(page.locator("#queue-open")).to_have_text(
        f"{len(waiting)} open ({by_level['urgent']} urgent, {by_level['priority']} priority, {by_level['low']} low)"
    )
    oldest = min(waiting, key=lambda item: item.created_at)
    expect(page.locator("#queue-oldest")).to_contain_text("Oldest open escalation waiting")
    expect(page.locator("#queue-oldest time")).to_have_attribute(
        "datetime", oldest.created_at.isoformat(timespec="seconds")
    )
    expect(page).to_have_title(f"({by_level['urgent']} urgent) Escalations - Clinician console")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_pages_go_through_every_open_escalation_in_triage_order(page: Page, console: Console) -> None:
    expected = _triage(_open(console.store))
    total = len(expected)
    position = page.locator("#page-position")
    expect(position).to_have_text(f"Showing 1–{PAGE_SIZE} of {total}")
    seen: list[str] = []
    for number in range(-(-total // PAGE_SIZE)):
        first = number * PAGE_SIZE + 1
        last = min(first + PAGE_SIZE - 1, total)
        expect(position).to_have_text(f"Showing {first}–{last} of {total}")
        seen += _row_ids(page)
        if last < total:
            page.get_by_role("button", name="Next page").click()
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()
    assert seen == expected

    page.get_by_role("button", name="Previous page").click()
    expect(position).to_have_text(f"Showing {(-(-total // PAGE_SIZE) - 2) * PAGE_SIZE + 1}–"
                                  f"{(-(-total // PAGE_SIZE) - 1) * PAGE_SIZE} of {total}")


def test_filters_narrow_the_list(page: Page, console: Console) -> None:
    page.get_by_label("Level").select_option(label="Urgent")
    urgent = _triage(_open(console.store, level="urgent"))
    expect(page.locator("#page-position")).to_have_text(f"Showing 1–{PAGE_SIZE} of {len(urgent)}")
    assert _row_ids(page) == urgent[:PAGE_SIZE]
    expect(page.locator("#escalation-rows .badge")).to_have_text(["Urgent"] * PAGE_SIZE)

    page.get_by_label("Category").select_option(label="Self-harm")
    urgent_self_harm = _triage(_open(console.store, level="urgent", category="self_harm"))
    expect(page.locator("#list-summary")).to_have_text(
        f"{len(urgent_self_harm)} open escalations matching the filters."
    )
    assert _row_ids(page) == urgent_self_harm[:PAGE_SIZE]

    page.get_by_label("Channel").select_option("rest")
    both = _triage(_open(console.store, level="urgent", category="self_harm", channel="rest"))
    expect(page.locator("#escalation-rows tr")).to_have_count(len(both))
    assert _row_ids(page) == both

    page.get_by_label("Status").select_option(label="Resolved")
    page.get_by_label("Level").select_option(label="All levels")
    page.get_by_label("Category").select_option(label="All categories")
    page.get_by_label("Channel").select_option(label="All channels")
    expect(page.locator("#list-summary")).to_have_text("20 resolved escalations.")


def test_bulk_resolve_closes_test_traffic_with_a_note_on_each(page: Page, console: Console) -> None:
    test_traffic = _open(console.store, channel="rest")
    assert 0 < len(test_traffic) <= PAGE_SIZE
    open_before = len(_open(console.store))
    page.get_by_label("Channel").select_option("rest")
    expect(page.locator("#escalation-rows tr")).to_have_count(len(test_traffic))

    submit = page.locator("#bulk-submit")
    expect(submit).to_be_disabled()
    page.get_by_label("Select every escalation on this page that is not resolved").check()
    expect(submit).to_have_text(f"Resolve selected ({len(test_traffic)})")
    submit.click()
    expect(page.locator("#bulk-error")).to_have_text("Please write a short note of what was done.")
    assert len(_open(console.store, channel="rest")) == len(test_traffic)

    page.get_by_label("Note for every selected escalation (required)").fill(NOTE)
    submit.click()
    expect(page.locator("#bulk-status")).to_have_text(f"Resolved {len(test_traffic)} escalations.")
    expect(page.locator("#list-summary")).to_have_text("No open escalations matching the filters.")
    expect(page.locator("#queue-open")).to_contain_text(f"{open_before - len(test_traffic)} open")
    for item in test_traffic:
        stored = console.store.get(item.id)
        assert (stored.status, stored.resolved_by, stored.resolution_note) == ("resolved", "dr_test", NOTE)
        assert [(e.actor, e.action, e.note) for e in console.store.events(item.id)][-1] == (
            "dr_test",
            "resolved",
            NOTE,
        )
    assert len(_open(console.store)) == open_before - len(test_traffic)


def test_unused_ids_are_not_shown(page: Page) -> None:
    page.goto(page.url.split("/console")[0] + f"/console/escalations/{uuid.uuid4()}")
    expect(page.locator("#detail-error")).to_have_text("There is no escalation with this id.")
