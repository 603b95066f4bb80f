"""The demo clinic page and its chat widget in real headless Chromium, against real servers."""

from __future__ import annotations

import json
import threading
import urllib.request
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
import yaml
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from bot.crisis import CRISIS_LINE, EMERGENCY_NUMBER, CrisisLine, CrisisResources, load_crisis_resources
from bot.services import Supervisor
from bot.settings import PROJECT_ROOT
from bot.web.demo import render_clinic_page
from tests.escalation.receivers import free_port
from tests.servers import running_chat_services

RASA_PORT = free_port()
ACTION_PORT = free_port()
CONSOLE_PORT = free_port()
FOREIGN_PORT = 28999
PAGE_URL = f"http://127.0.0.1:{CONSOLE_PORT}/"
TOKEN = "widget-test-token"
SOCKET_URL = f"http://127.0.0.1:{RASA_PORT}"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHONE = {"width": 390, "height": 844}
SCREENSHOT = PROJECT_ROOT / "results" / "widget-phone.png"
SOCKET_CHANNEL = "bot.channels.socketio.HardenedSocketIOInput"
# Guards against a hung server; no assertion depends on how fast it answers.
REPLY_WAIT_MS = 120_000

QUESTION = "what is mdma-assisted therapy?"
RISK_MESSAGE = "I want to kill myself tonight"

# Opens a Socket.IO connection to `url` with one transport; resolves "connected" or "refused".
SOCKET_PROBE = """([url, transport]) => new Promise((resolve) => {
  const socket = io(url, {transports: [transport], reconnection: false, timeout: 30000});
  socket.on("connect", () => { socket.close(); resolve("connected"); });
  socket.on("connect_error", () => { socket.close(); resolve("refused"); });
})"""

FOREIGN_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Another website</title></head>
<body>
<p>Another website that copied the embed snippet.</p>
<script src="http://127.0.0.1:{CONSOLE_PORT}/widget/socket.io.min.js"></script>
<script src="http://127.0.0.1:{CONSOLE_PORT}/widget/chat-widget.js" defer></script>
</body></html>
""".encode()


# ---- Servers and browser ----------------------------------------------------------------




@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    """Actions, Rasa (the project's channels), worker and console on test ports."""
    workdir = tmp_path_factory.mktemp("widget-servers")
    with running_chat_services(
        workdir,
        token=TOKEN,
        rasa_port=RASA_PORT,
        action_port=ACTION_PORT,
        console_port=CONSOLE_PORT,
        console_secret="widget-test-console-secret-" + "x" * 32,
    ) as supervisor:
        # The project's credentials.yml, with the channels whose secrets are unset left off.
        assert SOCKET_CHANNEL in yaml.safe_load((workdir / "credentials.active.yml").read_text(encoding="utf-8"))
        yield supervisor


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


@pytest.fixture
def phone(browser: Browser, servers: Supervisor) -> Iterator[Page]:
    """A fresh phone-sized tab: its own storage, so no conversation carries over."""
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert errors == [], "the page raised script errors"


@pytest.fixture(scope="module")
def foreign_site() -> Iterator[str]:
    """A page on another loopback origin that embeds the widget as a clinic would."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(FOREIGN_PAGE)))
            self.end_headers()
            self.wfile.write(FOREIGN_PAGE)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", FOREIGN_PORT), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{FOREIGN_PORT}/"
    finally:
        server.shutdown()
        server.server_close()


# ---- What the assistant should say --------------------------------------------------------


@pytest.fixture(scope="module")
def crisis() -> CrisisResources:
    return load_crisis_resources(PROJECT_ROOT / "crisis_resources.yml")


def faq_answer(topic: str) -> str:
    responses = yaml.safe_load((PROJECT_ROOT / "data" / "responses.yml").read_text(encoding="utf-8"))["responses"]
    return responses[f"utter_faq/{topic}"][0]["text"]


def crisis_reply(crisis: CrisisResources) -> str:
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))
    return domain["responses"]["utter_crisis"][0]["text"].format(**crisis.as_template_variables())


# ---- Page helpers ------------------------------------------------------------------------


def launcher(page: Page) -> Locator:
    return page.get_by_role("button", name="Chat with our assistant")


def panel(page: Page) -> Locator:
    return page.get_by_role("dialog", name="Ask about MDMA-assisted therapy")


def bot_messages(page: Page) -> Locator:
    return page.locator(".mdma-chat__message--bot")


def user_messages(page: Page) -> Locator:
    return page.locator(".mdma-chat__message--user")


def user_texts_on_server(sender: str) -> list[str]:
    url = f"{SOCKET_URL}/conversations/{sender}/tracker?token={TOKEN}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return [e["text"] for e in json.loads(response.read())["events"] if e["event"] == "user"]


def stored_session_id(page: Page) -> str:
    return page.evaluate("() => JSON.parse(sessionStorage.getItem('mdma-chat')).sessionId")


def send(page: Page, text: str) -> None:
    page.get_by_label("Your message").fill(text)
    page.get_by_role("button", name="Send").click()


def focused_widget_element(page: Page) -> Dict[str, Any]:
    """The element focused inside the widget's shadow root, if focus is there."""
    return page.evaluate(
        """() => {
            const host = document.querySelector('[data-mdma-chat]');
            const active = host && document.activeElement === host ? host.shadowRoot.activeElement : null;
            return active ? {tag: active.tagName, cls: active.className, id: active.id} : {};
        }"""
    )


def covers_point(page: Page, locator: Locator) -> bool:
    """True if the element is the topmost thing at its own centre (nothing is drawn over it)."""
    return locator.evaluate(
        """(element) => {
            const box = element.getBoundingClientRect();
            const top = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
            return top !== null && element.contains(top);
        }"""
    )


# ---- Tests -------------------------------------------------------------------------------


def test_the_crisis_line_is_visible_before_anyone_types(phone: Page, crisis: CrisisResources) -> None:
    phone.goto(PAGE_URL)
    banner = phone.get_by_role("complementary", name="Urgent help")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text(f"In an emergency, call {crisis.emergency_number}.")
    expect(banner).to_contain_text(crisis.crisis_line)
    expect(banner.get_by_role("link", name=crisis.emergency_number)).to_have_attribute(
        "href", "tel:" + crisis.emergency_number
    )
    box = banner.bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"]
    assert covers_point(phone, banner), "something is drawn over the crisis line"
    expect(launcher(phone)).to_be_visible()
    expect(panel(phone)).to_be_hidden()


def test_a_conversation_on_a_phone(phone: Page, crisis: CrisisResources) -> None:
    phone.goto(PAGE_URL)
    launcher(phone).click()

    # Open: full screen, the crisis line in the header and the disclaimer first.
    chat = panel(phone)
    expect(chat).to_be_visible()
    assert chat.bounding_box() == {"x": 0, "y": 0, "width": PHONE["width"], "height": PHONE["height"]}
    header_crisis = chat.locator("[data-crisis-line]")
    expect(header_crisis).to_contain_text(f"In an emergency, call {crisis.emergency_number}.")
    expect(header_crisis).to_contain_text(crisis.crisis_line)
    expect(chat.get_by_role("note")).to_contain_text("not medical advice")
    expect(chat.get_by_role("button", name="Close chat")).to_be_visible()
    expect(chat.get_by_role("log", name="Conversation")).to_have_attribute("aria-live", "polite")

    # A question gets its answer, with quick replies.
    send(phone, QUESTION)
    expect(user_messages(phone).last).to_contain_text(QUESTION)
    expect(bot_messages(phone).last).to_contain_text(faq_answer("what_is_mdma_assisted_therapy"), timeout=REPLY_WAIT_MS)
    replies = chat.get_by_role("group", name="Suggested replies").get_by_role("button")
    expect(replies.first).to_be_visible()

    # A quick reply sends its payload; the person sees the button's title.
    payload_title = replies.first.inner_text()
    payloads = yaml.safe_load((PROJECT_ROOT / "data" / "responses.yml").read_text(encoding="utf-8"))["responses"][
        "utter_faq/what_is_mdma_assisted_therapy"
    ][0]["buttons"]
    topic = next(b["payload"] for b in payloads if b["title"] == payload_title).removeprefix("/faq/")
    replies.first.click()
    expect(user_messages(phone).last.locator(".mdma-chat__bubble")).to_have_text(payload_title)
    expect(bot_messages(phone).last).to_contain_text(faq_answer(topic), timeout=REPLY_WAIT_MS)
    expect(chat.get_by_role("group", name="Suggested replies")).to_have_count(1)

    # A reload keeps the conversation (and the panel open).
    before = [user_messages(phone).all_inner_texts(), bot_messages(phone).all_inner_texts()]
    session_id = stored_session_id(phone)
    phone.reload()
    expect(panel(phone)).to_be_visible()
    expect(bot_messages(phone).last).to_contain_text(faq_answer(topic))
    assert [user_messages(phone).all_inner_texts(), bot_messages(phone).all_inner_texts()] == before

    # ...and the same conversation goes on after it: a risk message gets the crisis reply.
    send(phone, RISK_MESSAGE)
    expect(user_messages(phone).last).to_contain_text(RISK_MESSAGE)
    answer = bot_messages(phone).filter(has_text=crisis_reply(crisis))
    expect(answer).to_have_count(1, timeout=REPLY_WAIT_MS)
    expect(answer).to_contain_text(f"call {crisis.emergency_number}", ignore_case=True)
    expect(header_crisis).to_be_visible()
    expect(chat.get_by_role("group", name="Suggested replies")).to_be_visible(timeout=REPLY_WAIT_MS)
    assert stored_session_id(phone) == session_id
    assert user_texts_on_server(f"web:{session_id}") == [QUESTION, f"/faq/{topic}", RISK_MESSAGE]

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    phone.screenshot(path=str(SCREENSHOT))


def test_keyboard_only(phone: Page, crisis: CrisisResources) -> None:
    phone.goto(PAGE_URL)
    for _ in range(20):
        phone.keyboard.press("Tab")
        if "mdma-chat__launcher" in focused_widget_element(phone).get("cls", ""):
            break
    else:
        pytest.fail("Tab never reached the chat launcher")

    phone.keyboard.press("Enter")
    expect(panel(phone)).to_be_visible()
    assert focused_widget_element(phone)["id"] == "mdma-chat-input"

    phone.keyboard.type(QUESTION)
    phone.keyboard.press("Enter")
    expect(user_messages(phone).last).to_contain_text(QUESTION)
    expect(bot_messages(phone).last).to_contain_text(faq_answer("what_is_mdma_assisted_therapy"), timeout=REPLY_WAIT_MS)
    expect(phone.get_by_label("Your message")).to_have_value("")

    # Full screen on a phone, Tab stays inside the chat.
    for _ in range(15):
        phone.keyboard.press("Tab")
        assert focused_widget_element(phone), "focus left the full-screen chat"

    phone.keyboard.press("Escape")
    expect(panel(phone)).to_be_hidden()
    assert "mdma-chat__launcher" in focused_widget_element(phone)["cls"]


def test_text_is_shown_as_text_and_links_are_safe(phone: Page) -> None:
    phone.goto(PAGE_URL)
    launcher(phone).click()
    markup = '<img src=x onerror="document.title=1"> <b>bold</b> see https://example.org/a?b=1. or javascript:alert(1)'
    send(phone, markup)
    message = user_messages(phone).last
    expect(message).to_contain_text('<img src=x onerror="document.title=1"> <b>bold</b>')
    assert message.locator("img, b").count() == 0
    links = message.get_by_role("link")
    expect(links).to_have_count(1)
    expect(links).to_have_attribute("href", "https://example.org/a?b=1")
    expect(links).to_have_attribute("rel", "noopener noreferrer nofollow")
    assert phone.title() != "1"


def test_a_page_on_another_origin_cannot_open_a_socket(
    browser: Browser, servers: Supervisor, foreign_site: str, crisis: CrisisResources
) -> None:
    context = browser.new_context(viewport=PHONE)
    try:
        foreign = context.new_page()
        foreign.goto(foreign_site)
        for transport in ("websocket", "polling"):
            assert foreign.evaluate(SOCKET_PROBE, [SOCKET_URL, transport]) == "refused", transport

        # The copied snippet shows the widget, which says it cannot reach the assistant.
        launcher(foreign).click()
        expect(foreign.get_by_role("status")).to_contain_text("can't be reached", timeout=REPLY_WAIT_MS)
        expect(panel(foreign).locator("[data-crisis-line]")).to_contain_text("emergency")

        # The same probe from the clinic's own page connects: the refusal is about the origin.
        own = context.new_page()
        own.goto(PAGE_URL)
        launcher(own).click()
        expect(own.get_by_role("status")).to_have_text("", timeout=REPLY_WAIT_MS)
        for transport in ("websocket", "polling"):
            assert own.evaluate(SOCKET_PROBE, [SOCKET_URL, transport]) == "connected", transport
    finally:
        context.close()


def test_the_page_policy_allows_only_its_own_scripts_and_the_chat_socket(phone: Page) -> None:
    policy = phone.request.get(PAGE_URL).headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    assert f"connect-src 'self' {SOCKET_URL} ws://127.0.0.1:{RASA_PORT};" in policy


def test_widget_settings_are_shared_only_with_allowed_origins(phone: Page, crisis: CrisisResources) -> None:
    url = f"{PAGE_URL}widget/config.json"
    allowed_origin = f"http://localhost:{CONSOLE_PORT}"
    allowed = phone.request.get(url, headers={"Origin": allowed_origin})
    assert allowed.headers["access-control-allow-origin"] == allowed_origin
    assert allowed.json() == {
        "socket_url": SOCKET_URL,
        "socket_path": "/socket.io",
        "crisis": crisis.as_template_variables(),
    }
    foreign = phone.request.get(url, headers={"Origin": f"http://127.0.0.1:{FOREIGN_PORT}"})
    assert foreign.status == 200 and "access-control-allow-origin" not in foreign.headers


def test_the_page_escapes_what_it_fills_in() -> None:
    template = '<p>{{ crisis_line }} ({{ region_name }})</p><a href="{{ emergency_tel }}">{{ emergency_number }}</a>'
    checked = date(2026, 12, 4)
    resources = CrisisResources(
        "XX",
        "<b>X</b>",
        {
            EMERGENCY_NUMBER: CrisisLine('1"2 3', "https://example.org", checked),
            CRISIS_LINE: CrisisLine("<script>alert(1)</script>", "https://example.org", checked),
        },
    )
    page = render_clinic_page(template, resources)
    assert page == (
        "<p>&lt;script&gt;alert(1)&lt;/script&gt; (&lt;b&gt;X&lt;/b&gt;)</p>"
        '<a href="tel:123">1&quot;2 3</a>'
    )


def test_widget_files_are_served_for_embedding(phone: Page) -> None:
    for name in ("chat-widget.js", "chat-widget.css", "socket.io.min.js"):
        response = phone.request.get(f"{PAGE_URL}widget/{name}")
        assert response.status == 200, name
        assert response.headers["cross-origin-resource-policy"] == "cross-origin"
    assert phone.request.get(f"{PAGE_URL}widget/clinic.html").status == 404
    assert phone.request.get(f"{PAGE_URL}widget/..%2Fpages.py").status == 404
