/**
 * The chat page: wires the form controls to a ChatClient and renders its events.
 *
 * State shown here (rooms, unread counts, the active room) lives in this module; the
 * protocol and delivery rules live in client.js, the DOM building blocks in view.js.
 */

import { MentionAlerts, TypingBoard } from "./alerts.js";
import { ChatClient, MAX_TEXT, checkText, socketUrl, textLength } from "./client.js";
import { clientKey, saveRooms, savedRooms, stored } from "./prefs.js";
import { RoomLog, el, renderMembers } from "./view.js";

const $ = (id) => document.getElementById(id);

const ROOM_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const ERRORS = {
  empty: "Type a message first.",
  too_long: "The server refused this message: it is too long.",
  not_joined: "You are not in this room.",
  nick_taken: "That nick is already taken in this room.",
  rate_limited: "Slow down: too many messages. Try again in a few seconds.",
  too_many_rooms: "You are in too many rooms; leave one first.",
  already_joined: "You are already in this room.",
  internal: "The server failed; try again.",
};

const STATUS = {
  connecting: "Connecting…",
  open: "Connected",
  waiting: "Reconnecting…",
  closed: "Not connected",
};

// The socket lives next to this module, so a root_path prefix and https (wss) just work.
const client = new ChatClient(socketUrl(import.meta.url), { key: clientKey() });
/** @type {Map<string, {log: RoomLog, tab: HTMLLIElement, badge: HTMLElement, unread: number,
 *   button: HTMLButtonElement}>} in tab order */
const rooms = new Map();
let nick = "";
let active = null;
/** The room a join form is waiting for, with the element to show its error in. */
let joining = null;
/** The room that was open before the page was reloaded, until it is rejoined. */
let restoreActive = null;

// Exposed for tests and debugging in the console; nothing on the page depends on it.
window.chat = { client, rooms };

/** Our wording for known error codes; the server's own message for the others. */
function describeError(code, message) {
  if (code === "bad_request") return `The server refused this request: ${message}`;
  return ERRORS[code] || message || code;
}

function showError(id, text, code = "") {
  $(id).textContent = text;
  $(id).dataset.code = code;
}

function rememberRooms() {
  saveRooms([...rooms.keys()], active);
}

/* ---------- who is typing, mention alerts (alerts.js) ---------- */

const typingBoard = new TypingBoard($("typing"));
client.addEventListener("typing", ({ detail }) => {
  if (rooms.has(detail.room)) typingBoard.typing(detail.room, detail.nick);
});

const mentionAlerts = new MentionAlerts($("notify"), (text) => showError("say-error", text));

function notifyMention(room, item) {
  mentionAlerts.notify(room, item.dataset.nick, item.querySelector(".text")?.textContent ?? "",
    () => activate(room, { focus: true }));
}

/* ---------- connection indicator ---------- */

let countdown = null;

client.addEventListener("status", ({ detail }) => {
  const status = $("status");
  status.dataset.state = detail.state;
  clearInterval(countdown);
  $("retry").hidden = detail.state !== "waiting";
  // While offline the member list may be out of date: greyed, and it says so.
  const offline = detail.state !== "open";
  $("members-box").classList.toggle("offline", offline);
  $("members-offline").hidden = !offline;
  if (offline) typingBoard.clear();
  if (detail.state !== "waiting") {
    status.textContent = STATUS[detail.state];
    return;
  }
  // Count down to the next attempt, in whole seconds (aria-live only re-reads on change).
  const due = Date.now() + detail.delay;
  const tick = () => {
    const left = Math.max(1, Math.ceil((due - Date.now()) / 1000));
    status.textContent = `Offline: reconnecting in ${left} s…`;
  };
  tick();
  countdown = setInterval(tick, 1000);
});

$("retry").addEventListener("click", () => client.retryNow());
window.addEventListener("online", () => client.retryNow());

/* ---------- rooms ---------- */

function addRoomUi(name) {
  const log = new RoomLog(name);
  log.root.hidden = true;
  log.root.addEventListener("scroll", () => {
    if (log.root.scrollTop < 40) loadOlder(name);
    log.onScroll(name === active && !document.hidden);
    if (name === active && log.unseen === 0) clearUnread(name);
  }, { passive: true });
  log.olderButton.addEventListener("click", () => loadOlder(name));
  log.jumpButton.addEventListener("click", () => {
    clearUnread(name);
    $("text").focus();
  });
  $("logs").append(log.root);

  const badge = el("span", { class: "badge unread" });
  badge.hidden = true;
  const button = el("button", { type: "button", class: "room-button",
    "aria-keyshortcuts": "Alt+ArrowUp Alt+ArrowDown" }, `#${name}`, " ", badge);
  button.addEventListener("click", () => activate(name));
  const close = el("button", { type: "button", class: "leave", "aria-label": `Leave ${name}`,
    title: `Leave ${name}` }, "×");
  close.addEventListener("click", () => client.leave(name));
  const tab = el("li", { "data-room": name }, button, close);
  $("room-list").append(tab);
  rooms.set(name, { log, tab, badge, unread: 0, button });
  return rooms.get(name);
}

function removeRoomUi(name) {
  const ui = rooms.get(name);
  if (!ui) return;
  typingBoard.clear(name);
  ui.log.root.remove();
  ui.tab.remove();
  rooms.delete(name);
  updateTitle();
}

/** Show `name`; `focus` puts the caret in the message box (after a keyboard switch...). */
function activate(name, { focus = false } = {}) {
  const ui = rooms.get(name);
  if (!ui) return;
  active = name;
  for (const [other, o] of rooms) {
    const current = other === name;
    o.log.root.hidden = !current;
    o.button.setAttribute("aria-current", current ? "true" : "false");
  }
  $("room-title").textContent = `#${name}`;
  showMembers(name);
  typingBoard.show(name);
  ui.log.reveal();
  clearUnread(name);
  // On a phone the tabs scroll sideways: keep the current one in sight.
  ui.tab.scrollIntoView({ block: "nearest", inline: "nearest" });
  rememberRooms();
  if (focus) $("text").focus();
}

/** Switch to the room `step` tabs away (wrapping), as Alt+Up / Alt+Down do. */
function cycleRoom(step) {
  const names = [...rooms.keys()].filter((n) => client.rooms.get(n)?.joined || n === active);
  if (!names.length) return;
  const at = names.indexOf(active);
  activate(names[(at + step + names.length) % names.length], { focus: true });
}

function showMembers(name) {
  const members = [...(client.rooms.get(name)?.members ?? [])];
  renderMembers($("member-list"), members, nick);
  $("member-count").textContent = String(members.length);
}

/** The tab title: the active room, with the unread count of every room in front. */
function updateTitle() {
  let total = 0;
  for (const ui of rooms.values()) total += ui.unread;
  const room = active === null ? "" : `#${active} · `;
  document.title = `${total ? `(${total}) ` : ""}${room}wsrun chat`;
}

function bumpUnread(name, count) {
  const ui = rooms.get(name);
  if (!ui || count <= 0) return;
  // The room shown counts too while the page is hidden or scrolled up, without a badge.
  if (name === active && !document.hidden && ui.log.unseen === 0) return;
  ui.unread += count;
  if (name !== active) {
    ui.badge.hidden = false;
    ui.badge.textContent = String(ui.unread);
  }
  ui.button.setAttribute("aria-label", `#${name}, ${ui.unread} unread`);
  updateTitle();
}

function clearUnread(name) {
  const ui = rooms.get(name);
  if (!ui) return;
  ui.unread = 0;
  ui.badge.hidden = true;
  ui.button.removeAttribute("aria-label");
  updateTitle();
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden || active === null) return;
  const ui = rooms.get(active);
  if (ui.log.nearBottom) ui.log.markSeen();
  if (ui.log.unseen === 0) clearUnread(active);
});

function loadOlder(name) {
  const ui = rooms.get(name);
  if (ui && client.loadOlder(name)) ui.log.setOlder({ loading: true });
}

function join(room, form) {
  joining = form === "restore" ? joining : { room, form };
  addRoomUi(room);
  client.join(room, nick, { restored: form === "restore" });
}

function showChat() {
  $("join-view").hidden = true;
  $("chat-view").hidden = false;
}

client.addEventListener("joined", ({ detail }) => {
  const ui = rooms.get(detail.room);
  if (!ui) return;
  const croom = client.rooms.get(detail.room);
  ui.log.setOlder({ done: croom.olderDone });
  if (joining && joining.room === detail.room) {
    if (joining.form === "join") {
      showChat();
      stored.set("chat.nick", nick);
    } else {
      $("add-room").value = "";
      showError("add-room-error", "");
    }
    joining = null;
    activate(detail.room, { focus: true });
  } else if (!detail.rejoin && (active === null || detail.room === restoreActive)) {
    // Rooms restored after a reload: the first one shows until the one open before is back.
    if (detail.room === restoreActive) restoreActive = null;
    activate(detail.room, { focus: true });
  }
  if (detail.rejoin) {
    if ($("say-error").dataset.code === "rejoining") showError("say-error", "");
    ui.log.addNotice(`Reconnected to #${detail.room}.`);
    if (detail.truncated) ui.log.addNotice("Some older messages were missed while offline.", "warning");
  } else {
    ui.log.addNotice(`You joined #${detail.room} as ${nick}.`);
  }
  rememberRooms();
  if (detail.room === active) showMembers(detail.room);
});

client.addEventListener("joinfail", ({ detail }) => {
  removeRoomUi(detail.room);
  const text = describeError(detail.code, detail.message);
  if (joining && joining.room === detail.room) {
    showError(joining.form === "join" ? "join-error" : "add-room-error", text);
    $(joining.form === "join" ? "nick" : "add-room").focus();
    joining = null;
  } else {
    showError("say-error", `#${detail.room}: ${text}`);
  }
  rememberRooms();
  if (rooms.size === 0 && joining === null) backToJoinForm(text);
});

function backToJoinForm(error = "") {
  active = null;
  $("chat-view").hidden = true;
  $("join-view").hidden = false;
  showError("join-error", error);
  updateTitle();
  $("room").focus();
}

client.addEventListener("left", ({ detail }) => {
  if (!rooms.has(detail.room)) return;
  const at = [...rooms.keys()].indexOf(detail.room);
  removeRoomUi(detail.room);
  rememberRooms();
  if (active !== detail.room) return;
  active = null;
  const names = [...rooms.keys()];
  // The neighbouring tab takes over, and the caret goes to its message box.
  if (names.length) activate(names[Math.min(at, names.length - 1)], { focus: true });
  else backToJoinForm();
});

/* ---------- messages ---------- */

client.addEventListener("messages", ({ detail }) => {
  const ui = rooms.get(detail.room);
  if (!ui) return;
  const older = detail.where === "older";
  // A first join's history is not news; what came while offline ("rejoin") is.
  const news = detail.where === "live" || detail.where === "rejoin";
  const away = detail.room !== active || document.hidden;
  const added = ui.log.addMessages(detail.messages, nick,
    { older: older || detail.where === "join", away: news && away });
  for (const m of detail.messages) typingBoard.stop(detail.room, m.nick);
  if (!news) return;
  bumpUnread(detail.room, added.length);
  for (const item of added) {
    if (item.classList.contains("mention")) notifyMention(detail.room, item);
  }
});

client.addEventListener("ack", ({ detail }) => {
  rooms.get(detail.room)?.log.confirm(detail.ref, detail.message, detail.duplicate);
});

client.addEventListener("failed", ({ detail }) => {
  rooms.get(detail.room)?.log.fail(detail.ref, detail.code);
  showError("say-error", describeError(detail.code, detail.message));
});

client.addEventListener("presence", ({ detail }) => {
  const ui = rooms.get(detail.room);
  if (!ui) return;
  if (detail.event === "leave") typingBoard.stop(detail.room, detail.nick);
  ui.log.addNotice(`${detail.nick} ${detail.event === "join" ? "joined" : "left"}`,
    "notice presence");
});

client.addEventListener("members", ({ detail }) => {
  if (detail.room === active) showMembers(detail.room);
});

client.addEventListener("older", ({ detail }) => {
  rooms.get(detail.room)?.log.setOlder({ done: detail.done });
});

client.addEventListener("error", ({ detail }) => {
  showError("say-error", describeError(detail.code, detail.message), detail.code);
});

/* ---------- forms ---------- */

$("join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const wanted = $("nick").value.trim();
  const room = $("room").value.trim();
  if (!wanted) return showError("join-error", "Choose a nick.");
  if (textLength(wanted) > 32) return showError("join-error", "A nick has at most 32 characters.");
  if (!ROOM_NAME.test(room)) {
    return showError("join-error", "A room name is 1-64 letters, digits, '_', '.' or '-'.");
  }
  showError("join-error", "");
  nick = wanted;
  if (rooms.has(room)) return;
  join(room, "join");
});

$("add-room-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const room = $("add-room").value.trim();
  if (!ROOM_NAME.test(room)) {
    $("add-room").focus();
    return showError("add-room-error", "Use 1-64 letters, digits, '_', '.' or '-'.");
  }
  showError("add-room-error", "");
  if (rooms.has(room)) {
    $("add-room").value = "";
    return activate(room, { focus: true });
  }
  join(room, "add");
});

// Suggest the rooms that exist (the server's `rooms` list) while choosing one to join.
$("add-room").addEventListener("focus", () => client.listRooms());
client.addEventListener("rooms", ({ detail }) => {
  $("room-suggestions").replaceChildren(...detail.rooms
    .filter((r) => r && typeof r.room === "string" && !rooms.has(r.room))
    .map((r) => el("option", { value: r.room },
      `${Number(r.members) || 0} member${Number(r.members) === 1 ? "" : "s"}`)));
});

function send() {
  const input = $("text");
  const text = input.value;
  if (active === null) return;
  const error = checkText(text);
  if (error) {
    showError("say-error", error === "too_long"
      ? `Too long: ${textLength(text)} characters, at most ${MAX_TEXT}.`
      : ERRORS.empty);
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return;
  }
  const result = client.say(active, text);
  if ("error" in result) {
    showError("say-error", describeError(result.error, ""));
    return;
  }
  rooms.get(active).log.addPending(result.ref, nick, text);
  clearUnread(active);
  input.value = "";
  updateCount();
  showError("say-error", "");
  input.removeAttribute("aria-invalid");
  input.focus();
}

function updateCount() {
  const n = textLength($("text").value);
  const count = $("text-count");
  count.textContent = n > MAX_TEXT * 0.9 ? `${n} / ${MAX_TEXT}` : "";
  count.classList.toggle("over", n > MAX_TEXT);
}

$("say-form").addEventListener("submit", (event) => {
  event.preventDefault();
  send();
});

$("text").addEventListener("keydown", (event) => {
  // Enter sends; Shift+Enter is a new line; Enter that confirms an IME composition is not a send.
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    send();
  }
});

$("text").addEventListener("input", () => {
  updateCount();
  if ($("text").value.trim() && active !== null) client.typing(active);
  if ($("text").getAttribute("aria-invalid")) {
    $("text").removeAttribute("aria-invalid");
    showError("say-error", "");
  }
});

/* ---------- keyboard shortcuts (listed in the page's "Keyboard shortcuts") ---------- */

document.addEventListener("keydown", (event) => {
  if ($("chat-view").hidden || event.isComposing) return;
  if (event.altKey && !event.ctrlKey && !event.metaKey
      && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
    event.preventDefault();
    cycleRoom(event.key === "ArrowUp" ? -1 : 1);
  } else if ((event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "k") {
    event.preventDefault();
    $("add-room").focus();
    $("add-room").select();
  } else if (event.key === "Escape" && document.activeElement === $("add-room")) {
    $("add-room").value = "";
    showError("add-room-error", "");
    $("text").focus();
  }
});

// Phone-sized screens: the member list starts folded so the log keeps the space.
if (window.matchMedia("(max-width: 640px)").matches) $("members-box").open = false;

/* ---------- start: back to the rooms open before a reload, or the join form ---------- */

nick = stored.get("chat.nick") || "";
$("nick").value = nick;
const restore = nick ? savedRooms() : [];
if (restore.length) {
  restoreActive = stored.get("chat.active");
  showChat();
  for (const room of restore) join(room, "restore");
  $("text").focus();
} else {
  $(($("nick").value ? "room" : "nick")).focus();
}
updateTitle();
client.start();
