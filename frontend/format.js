/**
 * Message text and time formatting for the page: links, @mentions, days, grouping.
 *
 * Everything here builds DOM nodes with createElement / createTextNode and sets attributes
 * with setAttribute: never innerHTML, so no text from the network becomes markup. Only
 * http: and https: URLs become links, each opening in a new tab without access to this
 * page (rel="noopener noreferrer"). Must not import client.js or main.js.
 */

/** Consecutive messages of one author closer than this share one header. */
export const GROUP_WINDOW_MS = 5 * 60 * 1000;

// A URL candidate: http(s):// then anything but whitespace and a few delimiters.
const URL_CANDIDATE = /\bhttps?:\/\/[^\s<>"'`]+/giu;
// Trailing punctuation that usually ends the sentence, not the URL.
const TRAILING = /[.,;:!?)\]}'"»…]+$/u;

/** `text` as an http(s) URL string, or null (any other scheme, or unparsable). */
export function safeUrl(text) {
  let url;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
}

/** Does `text` mention `nick` as `@nick` (case-insensitive, not followed by a word char)? */
export function mentions(text, nick) {
  return mentionRanges(text, nick).length > 0;
}

/** [start, end) index pairs of `@nick` in `text`. */
function mentionRanges(text, nick) {
  const ranges = [];
  if (!nick) return ranges;
  const needle = `@${nick}`.toLocaleLowerCase();
  const hay = text.toLocaleLowerCase();
  // toLocaleLowerCase may change lengths for a few scripts: then positions are unreliable.
  if (hay.length !== text.length) return ranges;
  let at = hay.indexOf(needle);
  while (at >= 0) {
    const end = at + needle.length;
    const before = at === 0 ? "" : text[at - 1];
    const after = text.slice(end, end + 1);
    if (!/[\p{L}\p{N}_]/u.test(before) && !/[\p{L}\p{N}_]/u.test(after)) ranges.push([at, end]);
    at = hay.indexOf(needle, end);
  }
  return ranges;
}

function link(href, text) {
  const a = document.createElement("a");
  a.setAttribute("href", href);
  a.setAttribute("target", "_blank");
  a.setAttribute("rel", "noopener noreferrer");
  a.textContent = text;
  return a;
}

/** Plain text with `@nick` wrapped in <mark class="mention">. */
function withMentions(text, nick) {
  const nodes = [];
  let last = 0;
  for (const [start, end] of mentionRanges(text, nick)) {
    if (start > last) nodes.push(document.createTextNode(text.slice(last, start)));
    const mark = document.createElement("mark");
    mark.className = "mention";
    mark.textContent = text.slice(start, end);
    nodes.push(mark);
    last = end;
  }
  if (last < text.length) nodes.push(document.createTextNode(text.slice(last)));
  return nodes;
}

/**
 * The nodes showing a message text: http(s) URLs as links, `@ownNick` marked.
 * @returns {Node[]}
 */
export function richText(text, ownNick = "") {
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(URL_CANDIDATE)) {
    const raw = match[0].replace(TRAILING, "");
    const href = safeUrl(raw);
    if (href === null) continue;
    if (match.index > last) nodes.push(...withMentions(text.slice(last, match.index), ownNick));
    nodes.push(link(href, raw));
    last = match.index + raw.length;
  }
  if (last < text.length) nodes.push(...withMentions(text.slice(last), ownNick));
  return nodes;
}

/** The local calendar day of a Date, as "YYYY-MM-DD" (compares and sorts as a string). */
export function dayKey(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

const dayFormat = new Intl.DateTimeFormat(undefined,
  { weekday: "long", year: "numeric", month: "long", day: "numeric" });

/** "Today", "Yesterday", or the full local date, for a day separator. */
export function dayLabel(date, now = new Date()) {
  const key = dayKey(date);
  if (key === dayKey(now)) return "Today";
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (key === dayKey(yesterday)) return "Yesterday";
  return dayFormat.format(date);
}

/** Should a message by `nick` at `date` join the group of `prev` ({nick, date})? */
export function continues(prev, nick, date) {
  if (!prev || prev.nick !== nick) return false;
  const gap = date.getTime() - prev.date.getTime();
  return gap >= 0 && gap < GROUP_WINDOW_MS && dayKey(prev.date) === dayKey(date);
}
