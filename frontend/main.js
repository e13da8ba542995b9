/**
 * The chat page: wires the form controls to a ChatClient and renders its events.
 *
 * State shown here (rooms, unread counts, the active room) lives in this module; the
 * protocol and delivery rules live in client.js, the DOM building blocks in view.js.
 */

import { ChatClient, MAX_TEXT, checkText, socketUrl, textLength } from "./client.js";
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
const client = new ChatClient(socketUrl(import.meta.url));
/** @type {Map<string, {log: RoomLog, tab: HTMLLIElement, badge: HTMLElement, unread: number}>} */
const rooms = new Map();
let nick = "";
let active = null;
/** The room a join form is waiting for, with the element to show its error in. */
let joining = null;

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

/* ---------- connection indicator ---------- */

let countdown = null;

client.addEventListener("status", ({ detail }) => {
  const status = $("status");
  status.dataset.state = detail.state;
  clearInterval(countdown);
  $("retry").hidden = detail.state !== "waiting";
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
  }, { passive: true });
  log.olderButton.addEventListener("click", () => loadOlder(name));
  $("logs").append(log.root);

  const badge = el("span", { class: "badge unread", "aria-label": "unread messages" });
  badge.hidden = true;
  const button = el("button", { type: "button", class: "room-button" }, `#${name}`, " ", badge);
  button.addEventListener("click", () => activate(name));
  const close = el("button", { type: "button", class: "leave", "aria-label": `Leave ${name}`,
    title: `Leave ${name}` }, "×");
  close.addEventListener("click", () => client.leave(name));
  const tab = el("li", { "data-room": name }, button, close);
  $("room-list").append(tab);
  rooms.set(name, { log, tab, badge, unread: 0, button });
  return rooms.get(name);
}

function activate(name) {
  const ui = rooms.get(name);
  if (!ui) return;
  active = name;
  for (const [other, o] of rooms) {
    const current = other === name;
    o.log.root.hidden = !current;
    o.button.setAttribute("aria-current", current ? "true" : "false");
  }
  ui.unread = 0;
  ui.badge.hidden = true;
  $("room-title").textContent = `#${name}`;
  showMembers(name);
  ui.log.scrollToBottom();
  document.title = `#${name} · wsrun chat`;
}

function showMembers(name) {
  const members = [...(client.rooms.get(name)?.members ?? [])];
  renderMembers($("member-list"), members, nick);
  $("member-count").textContent = String(members.length);
}

function bumpUnread(name, count) {
  const ui = rooms.get(name);
  if (!ui || name === active || count <= 0) return;
  ui.unread += count;
  ui.badge.hidden = false;
  ui.badge.textContent = String(ui.unread);
  ui.badge.setAttribute("aria-label", `${ui.unread} unread`);
}

function loadOlder(name) {
  const ui = rooms.get(name);
  if (ui && client.loadOlder(name)) ui.log.setOlder({ loading: true });
}

function join(room, form) {
  joining = { room, form };
  addRoomUi(room);
  client.join(room, nick);
}

client.addEventListener("joined", ({ detail }) => {
  const ui = rooms.get(detail.room);
  if (!ui) return;
  const croom = client.rooms.get(detail.room);
  ui.log.setOlder({ done: croom.olderDone });
  if (joining && joining.room === detail.room) {
    if (joining.form === "join") {
      $("join-view").hidden = true;
      $("chat-view").hidden = false;
      try { localStorage.setItem("chat.nick", nick); } catch { /* private mode */ }
    } else {
      $("add-room").value = "";
      showError("add-room-error", "");
    }
    joining = null;
    activate(detail.room);
    $("text").focus();
  }
  if (detail.rejoin) {
    if ($("say-error").dataset.code === "rejoining") showError("say-error", "");
    ui.log.addNotice(`Reconnected to #${detail.room}.`);
    if (detail.truncated) ui.log.addNotice("Some older messages were missed while offline.", "warning");
  } else {
    ui.log.addNotice(`You joined #${detail.room} as ${nick}.`);
  }
  if (detail.room === active) showMembers(detail.room);
});

client.addEventListener("joinfail", ({ detail }) => {
  const ui = rooms.get(detail.room);
  if (ui) {
    ui.log.root.remove();
    ui.tab.remove();
    rooms.delete(detail.room);
  }
  const text = describeError(detail.code, detail.message);
  if (joining && joining.room === detail.room) {
    showError(joining.form === "join" ? "join-error" : "add-room-error", text);
    if (joining.form === "join") $("nick").focus();
    joining = null;
  } else {
    showError("say-error", text);
  }
});

client.addEventListener("left", ({ detail }) => {
  const ui = rooms.get(detail.room);
  if (!ui) return;
  ui.log.root.remove();
  ui.tab.remove();
  rooms.delete(detail.room);
  if (active === detail.room) {
    active = null;
    const next = rooms.keys().next();
    if (!next.done) activate(next.value);
    else {
      // No room left: back to the join form.
      $("chat-view").hidden = true;
      $("join-view").hidden = false;
      $("room").focus();
    }
  }
});

/* ---------- messages ---------- */

client.addEventListener("messages", ({ detail }) => {
  const ui = rooms.get(detail.room);
  if (!ui) return;
  const older = detail.where === "older";
  ui.log.addMessages(detail.messages, nick, { older });
  if (!older) bumpUnread(detail.room, detail.messages.filter((m) => m.nick !== nick).length);
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
    return showError("add-room-error", "Use 1-64 letters, digits, '_', '.' or '-'.");
  }
  if (rooms.has(room)) {
    $("add-room").value = "";
    return activate(room);
  }
  showError("add-room-error", "");
  join(room, "add");
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
  if ($("text").getAttribute("aria-invalid")) {
    $("text").removeAttribute("aria-invalid");
    showError("say-error", "");
  }
});

// Phone-sized screens: the member list starts folded so the log keeps the space.
if (window.matchMedia("(max-width: 640px)").matches) $("members-box").open = false;

try {
  $("nick").value = localStorage.getItem("chat.nick") || "";
} catch { /* storage disabled */ }
$(($("nick").value ? "room" : "nick")).focus();
client.start();
