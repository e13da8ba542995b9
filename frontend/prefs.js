/**
 * What the page remembers in localStorage: nick, client key, open rooms, alert opt-in.
 *
 * localStorage may be refused (private modes, locked-down browsers): every access is
 * guarded and the page then simply forgets. Must not import the other modules.
 */

const ROOM_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** The server's CHAT_MAX_ROOMS default: more saved rooms than that cannot be rejoined. */
const MAX_ROOMS = 16;

export const stored = {
  get(key) {
    try { return localStorage.getItem(key); } catch { return null; }
  },
  set(key, value) {
    try { localStorage.setItem(key, value); } catch { /* storage disabled */ }
  },
};

/**
 * This browser's client key, made once: the same nick with the same key may be in a room
 * from several tabs (docs/protocol.md, `join`). 32 hex digits from crypto.getRandomValues.
 */
export function clientKey() {
  let key = stored.get("chat.key");
  if (!key || !/^[A-Za-z0-9_-]{16,64}$/.test(key)) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    key = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    stored.set("chat.key", key);
  }
  return key;
}

/** Remember the open rooms (tab order) and the one shown, for the next page load. */
export function saveRooms(names, active) {
  stored.set("chat.rooms", JSON.stringify(names));
  if (active !== null) stored.set("chat.active", active);
}

/** The rooms saved by saveRooms (valid names only, at most MAX_ROOMS). */
export function savedRooms() {
  try {
    const names = JSON.parse(stored.get("chat.rooms") || "[]");
    return Array.isArray(names)
      ? names.filter((n) => typeof n === "string" && ROOM_NAME.test(n)).slice(0, MAX_ROOMS)
      : [];
  } catch {
    return [];
  }
}
