/**
 * DOM building blocks of the page: one message log per room, member lists, room tabs.
 *
 * Every piece of user data (nicks, texts, room names, server messages) goes through
 * textContent or attributes set with setAttribute: never innerHTML, so nothing a user
 * types can become markup (no XSS). Must not import client.js: it knows no protocol.
 */

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

/** One message of the log; `own` marks ours, `state` is "pending", "confirmed" or "failed". */
export function messageItem({ nick, text, ts, id = null, ref = null, own = false,
  state = "confirmed" }) {
  const stateLabel = { pending: "sending…", confirmed: "sent", failed: "not sent" }[state];
  const item = el("li", {
    class: `msg${own ? " own" : ""} ${state}`,
    "data-id": id,
    "data-ref": ref,
  },
  el("span", { class: "meta" },
    el("span", { class: "nick" }, nick),
    " ",
    timeElement(ts),
    own ? el("span", { class: "state", title: stateLabel }, ` ${stateLabel}`) : null),
  el("p", { class: "text" }, text));
  return item;
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
  return el("li", { class: kind }, el("span", { class: "notice-text" }, text), " ",
    timeElement(null));
}

/** The log of one room: confirmed messages by id, then our pending ones. */
export class RoomLog {
  constructor(room) {
    this.room = room;
    this.olderButton = el("button", { type: "button", class: "older-button" },
      "Load older messages");
    this.olderBox = el("p", { class: "older" }, this.olderButton);
    this.list = el("ol", { class: "messages" });
    this.pendingList = el("ol", { class: "pending-list", "aria-label": "Not yet sent" });
    this.root = el("div", {
      class: "log",
      role: "log",
      tabindex: "0",
      "aria-label": `Messages in ${room}`,
      "data-room": room,
    }, this.olderBox, this.list, this.pendingList);
  }

  get nearBottom() {
    const r = this.root;
    return r.scrollHeight - r.scrollTop - r.clientHeight < 48;
  }

  scrollToBottom() {
    this.root.scrollTop = this.root.scrollHeight;
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
      // Notices that arrived after `after` stay before later messages only if newer ones exist.
      after.after(item);
    } else {
      this.list.prepend(item);
    }
  }

  hasId(id) {
    return this.list.querySelector(`li[data-id="${Number(id)}"]`) !== null;
  }

  addMessages(messages, ownNick, { older = false } = {}) {
    this.preserving(() => {
      for (const m of messages) {
        if (this.hasId(m.id)) continue;
        const item = messageItem({ nick: String(m.nick), text: String(m.text), ts: m.ts,
          id: m.id, own: m.nick === ownNick });
        if (older) this.insertById(item, m.id);
        else this.appendConfirmed(item, m.id);
      }
    }, { atTop: older });
  }

  /** Live messages go last, unless an older id arrives late (after a rejoin): then in order. */
  appendConfirmed(item, id) {
    const lastIds = [...this.list.querySelectorAll("li[data-id]")];
    const last = lastIds.length ? Number(lastIds[lastIds.length - 1].dataset.id) : -Infinity;
    if (id > last) this.list.append(item);
    else this.insertById(item, id);
  }

  addNotice(text, kind) {
    this.preserving(() => this.list.append(noticeItem(text, kind)));
  }

  addPending(ref, nick, text) {
    const item = messageItem({ nick, text, ts: null, ref, own: true, state: "pending" });
    this.preserving(() => this.pendingList.append(item));
    this.scrollToBottom();
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
