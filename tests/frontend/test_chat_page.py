"""The chat page in a real browser against a real `wsrun app:chat`: people chatting.

Each test drives the page the way a person does (labelled controls, Enter to send) and
asserts exactly what the page shows: texts, order, own/pending/confirmed marks, errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import BrowserContext, WebSocketRoute, expect
from websockets.sync.client import connect

from tests.frontend.conftest import SLOW, ChatPage, chat_server, shoot
from tests.procs import free_port

OpenChat = Callable[..., ChatPage]


def test_two_people_chat_and_see_each_other(tmp_path: Path, open_chat: OpenChat) -> None:
    with chat_server(tmp_path) as url:
        alice = open_chat(url)
        expect(alice.page.get_by_label("Nick")).to_be_focused()
        shoot(alice.page, "join")
        alice.join("alice", "general")
        bob = open_chat(url).join("bob", "general")

        # Presence: alice is told bob came; both member lists agree.
        expect(alice.log("general").locator("li.presence .notice-text")).to_have_text(
            ["bob joined"])
        expect(alice.members()).to_have_text(["alice (you)", "bob"])
        expect(bob.members()).to_have_text(["alice", "bob (you)"])
        expect(alice.page.locator("#member-count")).to_have_text("2")

        alice.say("hi bob")
        expect(bob.confirmed_texts("general")).to_have_text(["hi bob"])
        bob.say("hello alice")
        expect(alice.confirmed_texts("general")).to_have_text(["hi bob", "hello alice"])
        expect(bob.confirmed_texts("general")).to_have_text(["hi bob", "hello alice"])

        # Nick on every message; our own marked (and acknowledged), the other's not.
        expect(alice.log("general").locator("li.msg .nick")).to_have_text(["alice", "bob"])
        expect(alice.log("general").locator("li.msg.own .text")).to_have_text(["hi bob"])
        expect(bob.log("general").locator("li.msg.own .text")).to_have_text(["hello alice"])
        expect(alice.log("general").locator("li.msg.pending")).to_have_count(0)
        ids = alice.log("general").locator("li.msg").evaluate_all(
            "items => items.map(li => Number(li.dataset.id))")
        assert ids == bob.log("general").locator("li.msg").evaluate_all(
            "items => items.map(li => Number(li.dataset.id))")
        assert ids[0] < ids[1]
        # Local time: the <time> carries the server's UTC instant and shows it as HH:MM.
        stamp = alice.log("general").locator("li.msg time").first
        expect(stamp).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT.*Z$"))
        expect(stamp).to_have_text(re.compile(r"^\d\d:\d\d( [AP]M)?$"))
        shoot(alice.page, "two-people")

        bob.page.get_by_role("button", name="Leave general").click()
        expect(alice.log("general").locator("li.presence .notice-text")).to_have_text(
            ["bob joined", "bob left"])
        expect(alice.members()).to_have_text(["alice (you)"])
        assert alice.dialogs == [] and alice.errors == [] and bob.errors == []


def test_rooms_switcher_counts_unread(tmp_path: Path, open_chat: OpenChat) -> None:
    with chat_server(tmp_path) as url:
        alice = open_chat(url).join("alice", "lobby")
        alice.add_room("dev")
        bob = open_chat(url).join("bob", "lobby")
        bob.say("first")
        bob.say("second")
        badge = alice.room_button("lobby").locator(".badge")
        expect(badge).to_have_text("2")
        expect(alice.room_button("dev").locator(".badge")).to_be_hidden()
        expect(alice.room_button("dev")).to_have_attribute("aria-current", "true")
        shoot(alice.page, "rooms-unread")

        alice.switch_to("lobby")
        expect(badge).to_be_hidden()
        expect(alice.confirmed_texts("lobby")).to_have_text(["first", "second"])
        expect(alice.members()).to_have_text(["alice (you)", "bob"])
        alice.say("back in lobby")
        expect(bob.confirmed_texts("lobby")).to_have_text(["first", "second", "back in lobby"])
        # Nothing said in dev: bob is not there and nothing leaked into it.
        expect(alice.log("dev").locator("li.msg")).to_have_count(0)


def test_markup_in_messages_and_nicks_is_shown_as_text(tmp_path: Path,
                                                      open_chat: OpenChat) -> None:
    payload = "<img src=x onerror=alert(1)>"
    nick = "<b>eve</b>"
    with chat_server(tmp_path) as url:
        eve = open_chat(url).join(nick, "lobby")
        bob = open_chat(url).join("bob", "lobby")
        eve.say(payload)
        eve.say('"><script>alert(2)</script>')
        expect(bob.confirmed_texts()).to_have_text([payload, '"><script>alert(2)</script>'])
        expect(bob.log("lobby").locator("li.msg .nick")).to_have_text([nick, nick])
        expect(eve.confirmed_texts()).to_have_text([payload, '"><script>alert(2)</script>'])
        expect(bob.members()).to_have_text([nick, "bob (you)"])
        for person in (eve, bob):
            # Had the text become markup, the <img> would exist and its onerror would have run.
            expect(person.page.locator("img")).to_have_count(0)
            expect(person.page.locator(".log script")).to_have_count(0)
            assert person.dialogs == []
            assert person.errors == []


def test_inline_errors_for_empty_too_long_and_server_refusals(tmp_path: Path,
                                                           open_chat: OpenChat) -> None:
    with chat_server(tmp_path, env={"CHAT_MAX_TEXT": "20", "CHAT_RATE": "3/60"}) as url:
        alice = open_chat(url).join("alice", "lobby")

        alice.input.press("Enter")
        expect(alice.say_error).to_have_text("Type a message first.")
        expect(alice.input).to_have_attribute("aria-invalid", "true")
        alice.say("   ")
        expect(alice.say_error).to_have_text("Type a message first.")
        alice.say("x" * 4001)
        expect(alice.say_error).to_have_text("Too long: 4001 characters, at most 4000.")
        expect(alice.log("lobby").locator("li.msg")).to_have_count(0)
        # Typing again clears the error.
        alice.input.type("o")
        expect(alice.say_error).to_have_text("")

        # Within the page's limit but over the server's CHAT_MAX_TEXT=20: the server's
        # `too_long` reply is shown next to the input and on the message.
        alice.say("twenty-one characters")
        expect(alice.say_error).to_have_text("The server refused this message: it is too long.")
        failed = alice.log("lobby").locator("li.msg.failed")
        expect(failed.locator(".text")).to_have_text(["twenty-one characters"])
        expect(failed.locator(".state")).to_have_text(["not sent: too_long"])

        # The fourth message within CHAT_RATE=3/60 is `rate_limited`; the connection stays.
        bob = open_chat(url).join("bob", "lobby")
        for text in ("one", "two", "three", "four"):
            bob.say(text)
        expect(bob.say_error).to_have_text(
            "Slow down: too many messages. Try again in a few seconds.")
        expect(bob.confirmed_texts()).to_have_text(["one", "two", "three"])
        expect(bob.log("lobby").locator("li.msg.failed .text")).to_have_text(["four"])
        expect(alice.confirmed_texts()).to_have_text(["one", "two", "three"])
        expect(bob.status).to_have_text("Connected")
        shoot(bob.page, "inline-errors")

        # A nick already in the room: the join form says so and lets you pick another.
        carol = open_chat(url)
        carol.page.get_by_label("Nick").fill("alice")
        carol.page.get_by_role("button", name="Join", exact=True).click()
        expect(carol.page.locator("#join-error")).to_have_text(
            "That nick is already taken in this room.")
        carol.join("carol", "lobby")
        expect(carol.members()).to_have_text(["alice", "bob", "carol (you)"])
        for person in (alice, bob, carol):
            assert person.dialogs == [] and person.errors == []


def test_scrolling_up_loads_older_history(tmp_path: Path, open_chat: OpenChat) -> None:
    texts = [f"message {n}" for n in range(1, 121)]
    with chat_server(tmp_path, env={"CHAT_RATE": "1000/1"}) as url:
        ws_url = url.replace("http://", "ws://") + "ws"
        with connect(ws_url, subprotocols=["chat.v1"]) as ws:  # type: ignore[list-item]
            ws.send(json.dumps({"type": "join", "room": "archive", "nick": "writer"}))
            assert json.loads(ws.recv(timeout=10))["type"] == "joined"
            for n, text in enumerate(texts):
                ws.send(json.dumps({"type": "say", "room": "archive", "text": text,
                                    "ref": str(n)}))
            acks = [json.loads(ws.recv(timeout=10)) for _ in texts]
            assert [a["text"] for a in acks] == texts

        reader = open_chat(url).join("reader", "archive")
        log = reader.log("archive")
        # The join brings the last 50; each scroll to the top brings the 50 before.
        expect(reader.confirmed_texts("archive")).to_have_text(texts[-50:])
        log.evaluate("el => { el.scrollTop = 0; }")
        expect(reader.confirmed_texts("archive")).to_have_text(texts[-100:])
        shoot(reader.page, "history")
        log.evaluate("el => { el.scrollTop = 0; }")
        expect(reader.confirmed_texts("archive")).to_have_text(texts)
        expect(log.get_by_role("button", name="Load older messages")).to_be_hidden()


def test_page_reconnects_after_restart_without_losing_or_doubling(
        tmp_path: Path, open_chat: OpenChat) -> None:
    port = free_port()
    joins: list[dict[str, object]] = []
    with chat_server(tmp_path, port=port) as url:
        alice = open_chat(url)
        # Watch (not touch) what the page sends: each connection's join.
        alice.page.on("websocket", lambda ws: ws.on("framesent", lambda frame: joins.extend(
            m for m in [json.loads(frame)] if m["type"] == "join")))
        alice.page.reload()
        alice.join("alice", "general")
        bob = open_chat(url).join("bob", "general")
        alice.say("before the restart")
        expect(bob.confirmed_texts("general")).to_have_text(["before the restart"])

    # The server is gone: the page says so and keeps what alice types, pending.
    expect(alice.status).to_contain_text("reconnecting", timeout=SLOW)
    # Keep alice off the network so bob's messages are sent while she is away.
    alice.page.context.set_offline(True)
    expect(alice.page.get_by_role("button", name="Reconnect now")).to_be_visible()
    alice.say("typed offline 1")
    alice.say("typed offline 2")
    expect(alice.log("general").locator("li.msg.pending .text")).to_have_text(
        ["typed offline 1", "typed offline 2"])
    expect(alice.log("general").locator("li.msg.pending .state")).to_have_text(
        ["sending…", "sending…"])
    shoot(alice.page, "offline")

    # Same port, same CHAT_DB file.
    with chat_server(tmp_path, port=port):
        expect(bob.status).to_have_text("Connected", timeout=SLOW)
        expect(bob.log("general").locator("li.notice .notice-text").last).to_have_text(
            "Reconnected to #general.", timeout=SLOW)
        bob.say("while alice was away 1")
        bob.say("while alice was away 2")
        expect(bob.confirmed_texts("general")).to_have_text(
            ["before the restart", "while alice was away 1", "while alice was away 2"])

        alice.page.context.set_offline(False)
        expect(alice.status).to_have_text("Connected", timeout=SLOW)
        everything = ["before the restart", "while alice was away 1", "while alice was away 2",
                      "typed offline 1", "typed offline 2"]
        expect(alice.confirmed_texts("general")).to_have_text(everything, timeout=SLOW)
        expect(alice.log("general").locator("li.msg.pending")).to_have_count(0)
        expect(alice.page.get_by_role("button", name="Reconnect now")).to_be_hidden()
        expect(bob.confirmed_texts("general")).to_have_text(everything)
        expect(alice.members()).to_have_text(["alice (you)", "bob"])
        # The rejoin asked for what came after the last message seen, not the whole history.
        first_id = alice.log("general").locator("li.msg").first.get_attribute("data-id")
        # Every join carries this browser's client key (kept in localStorage).
        key = alice.page.evaluate("localStorage.getItem('chat.key')")
        assert re.fullmatch(r"[0-9a-f]{32}", key)
        assert joins[0] == {"type": "join", "room": "general", "nick": "alice", "key": key}
        assert joins[-1] == {"type": "join", "room": "general", "nick": "alice", "key": key,
                             "since": int(first_id or "")}
        shoot(alice.page, "reconnected")
        assert alice.errors == [] and bob.errors == []


def test_unacknowledged_message_is_resent_with_its_ref_and_shown_once(
        tmp_path: Path, open_chat: OpenChat, new_context: Callable[..., BrowserContext]) -> None:
    """The server stores the message but its acknowledgement never reaches the page."""
    with chat_server(tmp_path) as url:
        bob = open_chat(url).join("bob", "general")
        page = new_context().new_page()
        says: list[dict[str, object]] = []
        connections: list[WebSocketRoute] = []

        def route(ws: WebSocketRoute) -> None:
            # Playwright sits between the page and the real server, relaying every frame.
            server = ws.connect_to_server()
            first = not connections
            connections.append(ws)

            def from_page(frame: str | bytes) -> None:
                message = json.loads(frame)
                if message["type"] == "say":
                    says.append(message)
                server.send(frame)

            def from_server(frame: str | bytes) -> None:
                message = json.loads(frame)
                if first and message["type"] == "message" and "ref" in message:
                    # The ack is lost with the connection. (1000: a page's WebSocket.close()
                    # refuses any code but 1000 and 3000-4999.)
                    ws.close(code=1000)
                    server.close(code=1000)
                    return
                ws.send(frame)

            ws.on_message(from_page)
            server.on_message(from_server)

        page.route_web_socket(url.replace("http://", "ws://") + "ws", route)
        alice = ChatPage(page).open(url).join("alice", "general")
        alice.say("said once")
        expect(bob.confirmed_texts("general")).to_have_text(["said once"])
        expect(alice.confirmed_texts("general")).to_have_text(["said once"], timeout=SLOW)
        expect(alice.log("general").locator("li.msg.pending")).to_have_count(0)
        expect(alice.log("general").locator("li.msg.own .text")).to_have_text(["said once"])
        assert len(connections) == 2
        assert [s["text"] for s in says] == ["said once", "said once"]
        assert says[0]["ref"] == says[1]["ref"]
        # The server de-duplicated by ref: bob still has exactly one copy.
        expect(bob.confirmed_texts("general")).to_have_text(["said once"])
        assert alice.errors == []


def test_rejoin_after_more_than_a_thousand_missed_says_some_were_missed(
        tmp_path: Path, open_chat: OpenChat) -> None:
    port = free_port()
    env = {"CHAT_RATE": "5000/1"}
    with chat_server(tmp_path, port=port, env=env) as url:
        alice = open_chat(url).join("alice", "busy")
        alice.say("seen")
        expect(alice.confirmed_texts("busy")).to_have_text(["seen"])
    expect(alice.status).to_contain_text("reconnecting", timeout=SLOW)
    alice.page.context.set_offline(True)
    missed = [f"missed {n}" for n in range(1, 1006)]
    with chat_server(tmp_path, port=port, env=env) as url:
        with connect(url.replace("http://", "ws://") + "ws",
                     subprotocols=["chat.v1"]) as ws:  # type: ignore[list-item]
            ws.send(json.dumps({"type": "join", "room": "busy", "nick": "flood"}))
            assert json.loads(ws.recv(timeout=10))["type"] == "joined"
            for n, text in enumerate(missed):
                ws.send(json.dumps({"type": "say", "room": "busy", "text": text, "ref": n}))
            assert [json.loads(ws.recv(timeout=10))["text"] for _ in missed] == missed
        alice.page.context.set_offline(False)
        # The server sends the newest 1,000 with `truncated`; the page says a gap exists.
        expect(alice.log("busy").locator("li.warning .notice-text")).to_have_text(
            ["Some older messages were missed while offline."], timeout=SLOW)
        expect(alice.confirmed_texts("busy")).to_have_text(["seen", *missed[-1000:]])
