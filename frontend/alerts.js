/**
 * Who is typing, and desktop notifications for @mentions (opt-in).
 *
 * Typing: each `typing` event shows its author for TYPING_SHOWN ms unless renewed (the
 * protocol has no "stopped typing": a lost one must not leave a name forever); a message or
 * a departure by that author ends it at once. Notifications: only after the person asked
 * (a button, then the browser's permission prompt), only while the tab is hidden.
 * Must not import main.js.
 */

import { TYPING_SHOWN } from "./client.js";
import { stored } from "./prefs.js";

/** Names typing per room, rendered into one live region for the room shown. */
export class TypingBoard {
  constructor(output) {
    this.output = output;
    /** @type {Map<string, Map<string, number>>} room -> nick -> expiry timer */
    this.rooms = new Map();
    this.active = null;
  }

  typing(room, nick) {
    if (!this.rooms.has(room)) this.rooms.set(room, new Map());
    const names = this.rooms.get(room);
    clearTimeout(names.get(nick));
    names.set(nick, setTimeout(() => this.stop(room, nick), TYPING_SHOWN));
    if (room === this.active) this.render();
  }

  stop(room, nick) {
    const names = this.rooms.get(room);
    if (!names || !names.has(nick)) return;
    clearTimeout(names.get(nick));
    names.delete(nick);
    if (room === this.active) this.render();
  }

  /** Forget `room` (left), or every room (offline) when `room` is null. */
  clear(room = null) {
    for (const [name, names] of this.rooms) {
      if (room !== null && name !== room) continue;
      for (const timer of names.values()) clearTimeout(timer);
      names.clear();
    }
    this.render();
  }

  show(room) {
    this.active = room;
    this.render();
  }

  render() {
    const names = [...(this.rooms.get(this.active)?.keys() ?? [])];
    let text = "";
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = "Several people are typing…";
    this.output.textContent = text;
  }
}

/** The "Mention alerts" toggle and the notifications it allows. */
export class MentionAlerts {
  /**
   * @param {HTMLButtonElement} button  the toggle (shown only where notifications exist)
   * @param {(text: string) => void} onBlocked  tells the person the browser said no
   */
  constructor(button, onBlocked) {
    this.button = button;
    if (!("Notification" in window)) return;
    button.hidden = false;
    this.render();
    button.addEventListener("click", async () => {
      if (this.wanted()) {
        stored.set("chat.notify", "off");
      } else {
        const permission = await Notification.requestPermission();
        stored.set("chat.notify", permission === "granted" ? "on" : "off");
        if (permission !== "granted") onBlocked("Notifications are blocked for this page.");
      }
      this.render();
    });
  }

  wanted() {
    return "Notification" in window && Notification.permission === "granted"
      && stored.get("chat.notify") === "on";
  }

  render() {
    const on = this.wanted();
    this.button.setAttribute("aria-pressed", on ? "true" : "false");
    this.button.textContent = on ? "Mention alerts: on" : "Mention alerts: off";
  }

  /** `author` mentioned us in `room`: notify if asked for and the tab is not in view. */
  notify(room, author, text, onClick) {
    if (!document.hidden || !this.wanted()) return;
    const notification = new Notification(`${author} in #${room}`,
      { body: text.slice(0, 200), tag: `chat-${room}` });
    notification.addEventListener("click", () => {
      window.focus();
      onClick();
      notification.close();
    });
  }
}
