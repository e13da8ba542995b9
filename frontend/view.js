/**
 * DOM building blocks of the page: one message log per room, member lists, room tabs.
 *
 * Every piece of user data (nicks, texts, room names, server messages) goes through
 * textContent or attributes set with setAttribute: never innerHTML, so nothing a user
 * types can become markup (no XSS). Must not import client.js: it knows no protocol.
 *
 * A log decorates its messages from their neighbours: a message by the same author within
 * GROUP_WINDOW_MS of the one above it is "continued" (its header hidden), and the first
 * message of a local day carries that day's separator. Inserting anywhere re-decorates the
 * new item and the message after it, so history pages loaded above stay consistent.
 */

import { continues, dayKey, dayLabel, mentions, richText } from "./format.js";

/** `el("li", {class: "x"}, child, "text")`: an element; strings become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** `<time>` showing an ISO 8601 UTC timestamp in local time (the full date on hover). */
export function timeElement(ts) {
  const date = ts ? new Date(ts) : new Date();
  if (Number.isNaN(date.getTime())) return el("time", {}, "");
  return el("time", { datetime: date.toISOString(), title: fullFormat.format(date) },
    timeFormat.format(date));
}

/** One message of the log; `own` marks ours, `state` is "pending", "confirmed" or "failed".
 * `ownNick` marks `@ownNick` in the text (and the whole message when someone else wrote it). */
export function messageItem({ nick, text, ts, id = null, ref = null, own = false,
  state = "confirmed", ownNick = "" }) {
  const stateLabel = { pending: "sending…", confirmed: "sent", failed: "not sent" }[state];
  const mention = !own && mentions(text, ownNick);
  const item = el("li", {
    class: `msg${own ? " own" : ""}${mention ? " mention" : ""} ${state}`,
    "data-id": id,
    "data-ref": ref,
    "data-nick": nick,
  },
  el("span", { class: "meta" },
    el("span", { class: "nick" }, nick),
    " ",
    timeElement(ts),
    own ? el("span", { class: "state", title: stateLabel }, ` ${stateLabel}`) : null),
  el("p", { class: "text" }, ...richText(text, ownNick)));
  return item;
}

function itemDate(item) {
  const time = item.querySelector(":scope > .meta time");
  const date = new Date(time?.getAttribute("datetime") || NaN);
  return Number.isNaN(date.getTime()) ? new Date() : date;
}

function previousMessage(item) {
  let prev = item.previousElementSibling;
  while (prev && !prev.classList.contains("msg")) prev = prev.previousElementSibling;
  return prev;
}

function nextMessage(item) {
  let next = item.nextElementSibling;
  while (next && !next.classList.contains("msg")) next = next.nextElementSibling;
  return next;
}

/** Set `item`'s grouping and day separator from the message above it. */
export function decorate(item) {
  if (!item.classList.contains("msg")) return;
  const date = itemDate(item);
  const prev = previousMessage(item);
  const prevDate = prev ? itemDate(prev) : null;
  // Grouped only when directly below a message of the same author (a notice breaks it).
  const adjacent = item.previousElementSibling === prev && prev !== null;
  item.classList.toggle("continued", adjacent && continues(
    { nick: prev.dataset.nick, date: prevDate }, item.dataset.nick, date));
  let day = item.querySelector(":scope > .day");
  if (prev && dayKey(prevDate) === dayKey(date)) {
    day?.remove();
    return;
  }
  const label = dayLabel(date);
  if (!day) {
    day = el("div", { class: "day" }, el("span", {}, ""));
    item.prepend(day);
  }
  day.firstChild.textContent = label;
}

function decorateAround(item) {
  decorate(item);
  const next = nextMessage(item);
  if (next) decorate(next);
}

/** Mark an own message element as confirmed (acknowledged by the server, with its id). */
export function confirmItem(item, message) {
  item.classList.remove("pending", "failed");
  item.classList.add("confirmed");
  item.dataset.id = String(message.id);
  const time = item.querySelector("time");
  if (time) time.replaceWith(timeElement(message.ts));
  const state = item.querySelector(".state");
  if (state) {
    state.textContent = " sent";
    state.title = "sent";
  }
}

export function failItem(item, reason) {
  item.classList.remove("pending");
  item.classList.add("failed");
  const state = item.querySelector(".state");
  if (state) {
    state.textContent = ` not sent: ${reason}`;
    state.title = "not sent";
  }
}

export function noticeItem(text, kind = "notice") {
  // A notice (joined, left...) breaks a group: the next message shows its author again.
  return el("li", { class: kind }, el("span", { class: "notice-text" }, text), " ",
    timeElement(null));
}

/** The log of one room: confirmed messages by id, then our pending ones.
 *
 * While the reader is away from the bottom (scrolled up, another room shown, the tab
 * hidden) new messages are "unseen": a "New messages" divider goes above the first of
 * them and a "Jump to latest" button (sticky at the bottom of the log) counts them.
 */
export class RoomLog {
  constructor(room) {
    this.room = room;
    this.ownNick = "";
    this.unseen = 0;
    this.divider = null;
    this.olderButton = el("button", { type: "button", class: "older-button" },
      "Load older messages");
    this.olderBox = el("p", { class: "older" }, this.olderButton);
    this.list = el("ol", { class: "messages" });
    this.pendingList = el("ol", { class: "pending-list", "aria-label": "Not yet sent" });
    this.jumpButton = el("button", { type: "button", class: "jump", hidden: true },
      "Jump to latest");
    this.root = el("div", {
      class: "log",
      role: "log",
      tabindex: "0",
      "aria-label": `Messages in ${room}`,
      "data-room": room,
    }, this.olderBox, this.list, this.pendingList, this.jumpButton);
    this.jumpButton.addEventListener("click", () => this.jumpToLatest());
  }

  get nearBottom() {
    const r = this.root;
    return r.scrollHeight - r.scrollTop - r.clientHeight < 48;
  }

  scrollToBottom() {
    this.root.scrollTop = this.root.scrollHeight;
  }

  /** Scroll to the end and count everything as seen. */
  jumpToLatest() {
    this.scrollToBottom();
    this.markSeen();
  }

  /** Show the room: at the first unseen message if there is one above the fold, else the end. */
  reveal() {
    if (this.divider && this.unseen > 0) {
      this.root.scrollTop = Math.max(0, this.divider.offsetTop - 8);
      if (this.nearBottom) this.markSeen();
      this.updateJump();
    } else {
      this.scrollToBottom();
    }
  }

  /** The reader is at the end: nothing unseen; the divider stays until the next batch. */
  markSeen() {
    this.unseen = 0;
    if (this.divider) this.divider.dataset.stale = "true";
    this.updateJump();
  }

  /** Called on scroll: reaching the end counts as having seen the new messages. */
  onScroll(visible) {
    if (visible && this.nearBottom && this.unseen > 0) this.markSeen();
    this.updateJump();
  }

  updateJump() {
    const show = !this.nearBottom || this.unseen > 0;
    this.jumpButton.hidden = !show;
    this.jumpButton.textContent = this.unseen > 0
      ? `${this.unseen} new message${this.unseen === 1 ? "" : "s"}: jump to latest`
      : "Jump to latest";
  }

  /** `items` arrived while the reader was away: divider above the first, count them. */
  markUnseen(items) {
    if (!items.length) return;
    if (!this.divider || this.divider.dataset.stale === "true") {
      this.divider?.remove();
      this.divider = el("li", { class: "unread-divider" }, el("span", {}, "New messages"));
      items[0].before(this.divider);
      const after = nextMessage(this.divider);
      if (after) decorate(after);
    }
    this.unseen += items.length;
    this.updateJump();
  }

  /** Keep what the reader looks at in place while `change` inserts above or below it. */
  preserving(change, { atTop = false } = {}) {
    const stick = this.nearBottom;
    const before = this.root.scrollHeight;
    const top = this.root.scrollTop;
    change();
    if (atTop) this.root.scrollTop = top + (this.root.scrollHeight - before);
    else if (stick) this.scrollToBottom();
  }

  /** Insert a confirmed message element in id order (ids only grow, so search from the end). */
  insertById(item, id) {
    let after = this.list.lastElementChild;
    while (after && !(after.dataset.id && Number(after.dataset.id) < id)) {
      after = after.previousElementSibling;
    }
    if (after) {
      after.after(item);
    } else {
      this.list.prepend(item);
    }
    decorateAround(item);
  }

  hasId(id) {
    return this.list.querySelector(`li[data-id="${Number(id)}"]`) !== null;
  }

  /**
   * Show `messages` (older ones in place); `away`: the reader is not looking at this log.
   * @returns {HTMLLIElement[]} the items added (others' messages not already shown)
   */
  addMessages(messages, ownNick, { older = false, away = false } = {}) {
    this.ownNick = ownNick;
    const unseen = !older && (away || !this.nearBottom);
    const added = [];
    this.preserving(() => {
      for (const m of messages) {
        if (this.hasId(m.id)) continue;
        const own = m.nick === ownNick;
        const item = messageItem({ nick: String(m.nick), text: String(m.text), ts: m.ts,
          id: m.id, own, ownNick });
        if (older) this.insertById(item, m.id);
        else this.appendConfirmed(item, m.id);
        if (!own) added.push(item);
      }
    }, { atTop: older });
    if (unseen) this.markUnseen(added);
    else this.updateJump();
    return added;
  }

  /** Live messages go last, unless an older id arrives late (after a rejoin): then in order. */
  appendConfirmed(item, id) {
    const lastIds = [...this.list.querySelectorAll("li[data-id]")];
    const last = lastIds.length ? Number(lastIds[lastIds.length - 1].dataset.id) : -Infinity;
    if (id > last) {
      this.list.append(item);
      decorate(item);
    } else {
      this.insertById(item, id);
    }
  }

  addNotice(text, kind) {
    this.preserving(() => this.list.append(noticeItem(text, kind)));
  }

  addPending(ref, nick, text) {
    const item = messageItem({ nick, text, ts: null, ref, own: true, state: "pending" });
    this.preserving(() => this.pendingList.append(item));
    // Our own message: the reader is at the end now, and the old divider has served.
    this.divider?.remove();
    this.divider = null;
    this.jumpToLatest();
    return item;
  }

  pendingItem(ref) {
    return this.pendingList.querySelector(`li[data-ref="${CSS.escape(ref)}"]`);
  }

  /** The server acknowledged `ref`: move our message among the confirmed ones. */
  confirm(ref, message, duplicate) {
    const item = this.pendingItem(ref);
    this.preserving(() => {
      if (!item) {
        if (!this.hasId(message.id)) this.addMessages([message], message.nick);
        return;
      }
      item.remove();
      if (duplicate || this.hasId(message.id)) {
        // Already shown from history (stored before the connection dropped).
        const shown = this.list.querySelector(`li[data-id="${Number(message.id)}"]`);
        if (shown) shown.classList.add("own");
        return;
      }
      confirmItem(item, message);
      this.appendConfirmed(item, message.id);
    });
  }

  fail(ref, reason) {
    const item = this.pendingItem(ref);
    if (!item) return;
    failItem(item, reason);
    this.list.append(item);
    decorate(item);
  }

  setOlder({ loading = false, done = false }) {
    this.olderBox.hidden = done;
    this.olderButton.disabled = loading;
    this.olderButton.textContent = loading ? "Loading older messages…" : "Load older messages";
  }
}

/** Render a member list (sorted, own nick marked). */
export function renderMembers(list, members, ownNick) {
  const sorted = [...members].sort((a, b) => a.localeCompare(b));
  list.replaceChildren(...sorted.map((nick) => el("li",
    { class: nick === ownNick ? "me" : null }, nick, nick === ownNick ? " (you)" : null)));
}
