/**
 * chat.v1 client: one WebSocket to the app's /ws, with automatic reconnect.
 *
 * This module owns the protocol and the delivery guarantees; it never touches the DOM
 * (main.js renders what it reports through events). It must not import main.js or view.js.
 *
 * Strategy:
 * - Reconnect with exponential backoff and full-range jitter, so a restarted server is not
 *   hit by every page at the same instant.
 * - On reconnect, rejoin every room with `since` = the highest id seen there: the server sends
 *   exactly the missed messages. Ids already seen are dropped again here, so a message can
 *   never be shown twice whatever the server or the network does.
 * - Every `say` carries a `ref` and stays in `pending` until the server echoes it back in our
 *   own copy of the message (the acknowledgement). After a reconnect every pending message is
 *   sent again with its original `ref`; the server de-duplicates by it, so a message whose
 *   acknowledgement was lost is neither lost nor stored twice.
 *
 * Events (CustomEvent, payload in `detail`):
 *   status   {state: "connecting"|"open"|"waiting"|"closed", delay?, attempt?}
 *   joined   {room, members, rejoin, truncated}
 *   joinfail {room, code, message}
 *   messages {room, messages, where: "join"|"live"|"rejoin"|"older"} (only ids not seen
 *            before; "join": the history of a first join, "rejoin": missed while offline)
 *   typing   {room, nick}                    (someone else is typing there)
 *   ack      {room, ref, message, duplicate}  (duplicate: the message was already shown)
 *   failed   {room, ref, code, message}       (the server refused a pending message)
 *   presence {room, nick, event}
 *   members  {room, members}
 *   left     {room}
 *   older    {room, count, done}
 *   rooms    {rooms: [{room, members}], next} (the answer to listRooms)
 *   error    {code, message}                  (an error reply not tied to a request)
 */

export const PROTOCOL = "chat.v1";
/** The app's default CHAT_MAX_TEXT; the server has the last word (`too_long`). */
export const MAX_TEXT = 4000;
export const HISTORY_PAGE = 50;
/** How often we tell a room we are typing, and how long others' typing is shown (ms). */
export const TYPING_INTERVAL = 3000;
export const TYPING_SHOWN = 6000;

/**
 * The WebSocket URL next to `base` (the page or module URL): `/ws` under the same path
 * prefix, so the page works behind a root_path, and wss: when the page came over https.
 */
export function socketUrl(base) {
  const url = new URL("ws", base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.hash = "";
  url.search = "";
  return url.href;
}

/** Length in code points, as the server counts it (not UTF-16 units). */
export function textLength(text) {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/** Client-side check before sending; returns an error code or null. */
export function checkText(text, maxText = MAX_TEXT) {
  if (!text.trim()) return "empty";
  if (textLength(text) > maxText) return "too_long";
  return null;
}

let refCounter = 0;
const refPrefix = Array.from(crypto.getRandomValues(new Uint8Array(6)),
  (b) => b.toString(16).padStart(2, "0")).join("");

/** A ref unique to this page load (crypto.randomUUID needs a secure context; this does not). */
function newRef() {
  refCounter += 1;
  return `${refPrefix}-${refCounter}`;
}

/** Restored joins (after a reload) retry `nick_taken` this many times: the previous page's
 * connection may hold the nick until the server notices it is gone. */
const RESTORE_RETRIES = 5;

class Room {
  constructor(name, nick, { restored = false } = {}) {
    this.name = name;
    this.nick = nick;
    this.retriesLeft = restored ? RESTORE_RETRIES : 0;
    this.joined = false;
    this.everJoined = false;
    this.members = new Set();
    this.returning = new Set();
    this.seen = new Set();
    this.lastId = null;
    this.oldestId = null;
    this.olderPending = false;
    this.olderDone = false;
    this.retryTimer = null;
  }
}

export class ChatClient extends EventTarget {
  /**
   * @param {string} url  ws:// or wss:// URL of the chat endpoint
   * @param {{baseDelay?: number, maxDelay?: number, connectTimeout?: number}} options
   *   delays in milliseconds: first retry, longest retry, longest wait for the handshake
   */
  constructor(url, { baseDelay = 500, maxDelay = 15000, connectTimeout = 10000, key = null }
    = {}) {
    super();
    this.url = url;
    /** Sent with every join: the same nick with the same key may be in a room twice. */
    this.key = key;
    this.baseDelay = baseDelay;
    this.maxDelay = maxDelay;
    this.connectTimeout = connectTimeout;
    /** @type {Map<string, Room>} */
    this.rooms = new Map();
    /** @type {Map<string, {ref: string, room: string, text: string}>} insertion-ordered */
    this.pending = new Map();
    /** Rooms whose `join` awaits its reply, oldest first: errors to a join carry no ref. */
    this.joinQueue = [];
    this.socket = null;
    this.state = "closed";
    this.attempt = 0;
    this.timer = null;
    this.stopped = true;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  setState(state, extra = {}) {
    this.state = state;
    this.emit("status", { state, ...extra });
  }

  get isOpen() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  /** Open the connection (idempotent); it is kept open until stop(). */
  start() {
    this.stopped = false;
    if (this.socket === null && this.timer === null) this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.socket) this.socket.close(1000);
    this.setState("closed");
  }

  /** Reconnect at once (e.g. the browser came back online) instead of waiting out the delay. */
  retryNow() {
    if (this.stopped || this.socket !== null) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.connect();
  }

  connect() {
    this.timer = null;
    this.setState("connecting", { attempt: this.attempt });
    let socket;
    try {
      socket = new WebSocket(this.url, PROTOCOL);
    } catch (err) {
      this.emit("error", { code: "connect", message: String(err) });
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    // A network that drops packets leaves a handshake hanging for minutes: give up sooner.
    const guard = setTimeout(() => {
      if (socket === this.socket && socket.readyState === WebSocket.CONNECTING) socket.close();
    }, this.connectTimeout);
    socket.addEventListener("open", () => clearTimeout(guard));
    socket.addEventListener("close", () => clearTimeout(guard));
    socket.onopen = () => this.onOpen(socket);
    socket.onmessage = (event) => this.onFrame(socket, event.data);
    socket.onclose = () => this.onClose(socket);
  }

  onOpen(socket) {
    if (socket !== this.socket) return;
    if (socket.protocol !== PROTOCOL) {
      // The server accepted without chat.v1: it would treat our JSON as plain text.
      this.emit("error", { code: "protocol", message: "The server does not speak chat.v1." });
      socket.close(1000);
      return;
    }
    if (this.rooms.size === 0) this.attempt = 0;
    this.setState("open");
    this.joinQueue = [];
    for (const room of this.rooms.values()) this.sendJoin(room);
  }

  onClose(socket) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.joinQueue = [];
    for (const room of this.rooms.values()) {
      room.joined = false;
      room.olderPending = false;
      clearTimeout(room.retryTimer);
      room.retryTimer = null;
    }
    if (this.stopped) {
      this.setState("closed");
      return;
    }
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    // Exponential backoff, capped; jitter spreads the delay over [d/2, d).
    const ceiling = Math.min(this.maxDelay, this.baseDelay * 2 ** this.attempt);
    const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    this.attempt = Math.min(this.attempt + 1, 16);
    this.timer = setTimeout(() => this.connect(), delay);
    this.setState("waiting", { delay, attempt: this.attempt });
  }

  send(obj) {
    if (!this.isOpen) return false;
    this.socket.send(JSON.stringify(obj));
    return true;
  }

  sendJoin(room) {
    const msg = { type: "join", room: room.name, nick: room.nick };
    if (this.key) msg.key = this.key;
    if (room.lastId !== null) msg.since = room.lastId;
    if (this.send(msg)) this.joinQueue.push(room.name);
  }

  /** Join `name` as `nick`; reported by a `joined` or `joinfail` event.
   * `restored`: a room the page was in before a reload (retries a held nick a few times). */
  join(name, nick, { restored = false } = {}) {
    if (this.rooms.has(name)) return;
    const room = new Room(name, nick, { restored });
    this.rooms.set(name, room);
    this.start();
    if (this.isOpen) this.sendJoin(room);
  }

  leave(name) {
    const room = this.rooms.get(name);
    if (!room) return;
    clearTimeout(room.retryTimer);
    this.rooms.delete(name);
    for (const [ref, item] of this.pending) if (item.room === name) this.pending.delete(ref);
    if (room.joined) this.send({ type: "leave", room: name });
    this.emit("left", { room: name });
  }

  /**
   * Queue `text` for `room`; sent now if the room is joined, else after the (re)join.
   * @returns {{ref: string}|{error: string}}
   */
  say(name, text) {
    const room = this.rooms.get(name);
    if (!room) return { error: "not_joined" };
    const error = checkText(text);
    if (error) return { error };
    const ref = newRef();
    room.typingSent = 0; // the message ends "typing" for the others: the next one is news
    this.pending.set(ref, { ref, room: name, text });
    if (room.joined) this.send({ type: "say", room: name, text, ref });
    return { ref };
  }

  /** Tell the room we are typing (the server forwards at most one every few seconds). */
  typing(name) {
    const room = this.rooms.get(name);
    if (!room || !room.joined) return false;
    const now = Date.now();
    if (room.typingSent && now - room.typingSent < TYPING_INTERVAL) return false;
    room.typingSent = now;
    return this.send({ type: "typing", room: name });
  }

  /** Ask the server which rooms exist; answered by a `rooms` event. */
  listRooms(cursor = null) {
    const msg = { type: "rooms" };
    if (cursor) msg.cursor = cursor;
    return this.send(msg);
  }

  /** Ask for the page of history before the oldest message shown; false if nothing to ask. */
  loadOlder(name, limit = HISTORY_PAGE) {
    const room = this.rooms.get(name);
    if (!room || !room.joined || room.olderPending || room.olderDone) return false;
    if (room.oldestId === null) return false;
    room.olderPending = true;
    room.olderLimit = limit;
    return this.send({ type: "history", room: name, before: room.oldestId, limit });
  }

  onFrame(socket, data) {
    if (socket !== this.socket || typeof data !== "string") return;
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      this.emit("error", { code: "bad_frame", message: "The server sent something unreadable." });
      return;
    }
    if (msg === null || typeof msg !== "object") return;
    switch (msg.type) {
      case "joined": return this.onJoined(msg);
      case "message": return this.onMessage(msg);
      case "presence": return this.onPresence(msg);
      case "history": return this.onHistory(msg);
      case "left": return;
      case "typing": return this.onTyping(msg);
      case "rooms": return this.emit("rooms", {
        rooms: Array.isArray(msg.rooms) ? msg.rooms : [],
        next: typeof msg.next === "string" ? msg.next : null });
      case "error": return this.onError(msg);
      default: return;
    }
  }

  /** Record `messages` of `room`; returns those not seen before, oldest first. */
  accept(room, messages) {
    const fresh = [];
    for (const m of messages) {
      if (!m || typeof m.id !== "number" || room.seen.has(m.id)) continue;
      room.seen.add(m.id);
      if (room.lastId === null || m.id > room.lastId) room.lastId = m.id;
      if (room.oldestId === null || m.id < room.oldestId) room.oldestId = m.id;
      fresh.push(m);
    }
    fresh.sort((a, b) => a.id - b.id);
    return fresh;
  }

  onJoined(msg) {
    const room = this.rooms.get(msg.room);
    const i = this.joinQueue.indexOf(msg.room);
    if (i >= 0) this.joinQueue.splice(i, 1);
    if (!room) return;
    const rejoin = room.everJoined;
    room.joined = true;
    room.everJoined = true;
    room.nick = typeof msg.nick === "string" ? msg.nick : room.nick;
    const before = room.members;
    room.members = new Set(Array.isArray(msg.members) ? msg.members : []);
    // Known before the connection dropped and not back yet: their rejoin is no news.
    room.returning = new Set(rejoin ? [...before].filter((n) => !room.members.has(n)) : []);
    this.attempt = 0;
    const history = Array.isArray(msg.history) ? msg.history : [];
    // A first join gets the last HISTORY_PAGE messages: fewer means there is nothing older.
    if (!rejoin && history.length < HISTORY_PAGE) room.olderDone = true;
    this.emit("joined", { room: room.name, members: [...room.members], rejoin,
      truncated: Boolean(msg.truncated) });
    const fresh = [];
    for (const m of this.accept(room, history)) {
      if (typeof m.ref === "string" && this.pending.has(m.ref)) {
        // Stored before the connection dropped, acknowledged only now.
        this.pending.delete(m.ref);
        this.emit("ack", { room: room.name, ref: m.ref, message: m, duplicate: false });
      } else {
        fresh.push(m);
      }
    }
    // A history copy without a ref of a message still pending here is shown now; resending it
    // below returns the original with our ref, and the `ack` then drops the pending copy.
    if (fresh.length) this.emit("messages", { room: room.name, messages: fresh,
      where: rejoin ? "rejoin" : "join" });
    for (const item of this.pending.values()) {
      if (item.room === room.name) {
        this.send({ type: "say", room: room.name, text: item.text, ref: item.ref });
      }
    }
  }

  onMessage(msg) {
    const room = this.rooms.get(msg.room);
    if (!room) return;
    const ref = typeof msg.ref === "string" ? msg.ref : null;
    const mine = ref !== null && this.pending.has(ref);
    const duplicate = room.seen.has(msg.id);
    const fresh = this.accept(room, [msg]);
    if (mine) {
      this.pending.delete(ref);
      this.emit("ack", { room: room.name, ref, message: msg, duplicate });
    } else if (fresh.length) {
      this.emit("messages", { room: room.name, messages: fresh, where: "live" });
    }
  }

  onTyping(msg) {
    const room = this.rooms.get(msg.room);
    if (!room || typeof msg.nick !== "string" || msg.nick === room.nick) return;
    this.emit("typing", { room: room.name, nick: msg.nick });
  }

  onPresence(msg) {
    const room = this.rooms.get(msg.room);
    if (!room || typeof msg.nick !== "string") return;
    // A presence line only for a real change: after a reconnect, people we already knew
    // were there rejoin too, and that is not news ("bob joined" twice).
    let news;
    if (msg.event === "join") {
      news = !room.members.has(msg.nick) && !room.returning.delete(msg.nick);
      room.members.add(msg.nick);
    } else if (msg.event === "leave") {
      news = room.members.delete(msg.nick);
      room.returning.delete(msg.nick);
    } else {
      return;
    }
    if (news) this.emit("presence", { room: room.name, nick: msg.nick, event: msg.event });
    this.emit("members", { room: room.name, members: [...room.members] });
  }

  onHistory(msg) {
    const room = this.rooms.get(msg.room);
    if (!room) return;
    const messages = Array.isArray(msg.messages) ? msg.messages : [];
    room.olderPending = false;
    if (messages.length < (room.olderLimit || HISTORY_PAGE)) room.olderDone = true;
    const fresh = this.accept(room, messages);
    if (fresh.length) this.emit("messages", { room: room.name, messages: fresh, where: "older" });
    this.emit("older", { room: room.name, count: fresh.length, done: room.olderDone });
  }

  onError(msg) {
    const code = typeof msg.code === "string" ? msg.code : "error";
    const message = typeof msg.message === "string" ? msg.message : code;
    const ref = typeof msg.ref === "string" ? msg.ref : null;
    if (ref !== null && this.pending.has(ref)) {
      // The server refused this message (empty, too_long, rate_limited, ...): it was not
      // stored, and sending the same text again would get the same answer.
      const item = this.pending.get(ref);
      this.pending.delete(ref);
      this.emit("failed", { room: item.room, ref, code, message });
      return;
    }
    if (this.joinQueue.length && code !== "rate_limited") {
      // Replies come in request order, and a failed join is the oldest one awaiting a reply.
      const name = this.joinQueue.shift();
      const room = this.rooms.get(name);
      const held = room && code === "nick_taken" && (room.everJoined || room.retriesLeft > 0);
      if (held) {
        if (!room.everJoined) room.retriesLeft -= 1;
        // Our previous connection may still hold the nick until the server notices it died.
        room.retryTimer = setTimeout(() => {
          room.retryTimer = null;
          if (this.rooms.get(name) === room && !room.joined) this.sendJoin(room);
        }, 1000);
        this.emit("error", { code: "rejoining",
          message: `Rejoining #${name}: the server still holds our previous connection.` });
        return;
      }
      if (room) this.rooms.delete(name);
      for (const [r, item] of this.pending) if (item.room === name) this.pending.delete(r);
      this.emit("joinfail", { room: name, code, message });
      return;
    }
    const olderRoom = [...this.rooms.values()].find((r) => r.olderPending);
    if (olderRoom) olderRoom.olderPending = false;
    this.emit("error", { code, message });
  }
}
