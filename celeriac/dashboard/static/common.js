// Shared by every page: the JSON API, the event stream, DOM building and formatting.
// Rule: text from the API (task args, results, names...) is only ever inserted with
// textContent / createTextNode, never as HTML.

export const BASE = document.body.dataset.base || "";
export const SUBJECT = document.body.dataset.subject || "";
export const READ_ONLY = document.body.dataset.readOnly === "1";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Build an element: attrs are set with setAttribute (on* names refused), children are
 * nodes or text. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.toLowerCase().startsWith("on")) throw new Error("no inline handlers");
    node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) append(node, child);
  return node;
}

export function append(node, child) {
  if (child === null || child === undefined) return;
  node.append(child instanceof Node ? child : document.createTextNode(String(child)));
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

export function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return "";
}

function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== null && value !== undefined && value !== "") q.set(key, String(value));
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const data = await response.json();
    if (data && typeof data.error === "string") message = data.error;
  } catch (_) {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, message);
}

/** GET a JSON document; resolves to {data, headers}. */
export async function getJSON(path, params) {
  const response = await fetch(BASE + path + query(params), {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  if (!response.ok) throw await failure(response);
  return { data: await response.json(), headers: response.headers };
}

/** POST with the CSRF token the dashboard set in the celeriac_csrf cookie. */
export async function post(path, body) {
  const response = await fetch(BASE + path, {
    method: "POST",
    credentials: "same-origin",
    headers: {
      Accept: "application/json",
      "Content-Type": "application/json",
      "X-CSRF-Token": cookie("celeriac_csrf"),
    },
    body: JSON.stringify(body || {}),
  });
  if (!response.ok) throw await failure(response);
  return response.json();
}

/** Show a one-line message under the header (error or info); empty text hides it, but only
 * a message of the same source: a periodic read clearing its own error ("load") leaves the
 * answer to a user's action in place. */
export function notice(text, isError = false, source = "action") {
  const node = document.getElementById("notice");
  if (!node) return;
  if (!text && node.dataset.source !== source) return;
  node.dataset.source = source;
  node.textContent = text || "";
  node.hidden = !text;
  node.classList.toggle("error", Boolean(isError));
}

/** Follow the dashboard's event stream; onEvent gets each event dict. The browser's
 * EventSource reconnects by itself; the header shows whether the stream is up. onOpen runs
 * each time the stream (re)connects: events sent while it was down are not replayed, so a
 * page re-reads what it shows then. */
export function liveEvents(types, onEvent, onOpen = null) {
  const marker = document.getElementById("live");
  const source = new EventSource(BASE + "/api/events/stream" + query({ types: types.join(",") }),
    { withCredentials: true });
  const show = (text, up) => {
    if (!marker) return;
    marker.textContent = text;
    marker.classList.toggle("up", up);
  };
  source.addEventListener("open", () => {
    show("live", true);
    if (onOpen) onOpen();
  });
  source.addEventListener("error", () => show("reconnecting…", false));
  source.addEventListener("message", (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch (_) {
      return;
    }
    if (event && typeof event === "object") onEvent(event);
  });
  return source;
}

/** Call fn at most once per interval_ms, the last request winning (trailing call kept). */
export function throttle(fn, interval_ms) {
  let last = 0;
  let timer = null;
  return () => {
    const wait = last + interval_ms - Date.now();
    if (wait <= 0 && timer === null) {
      last = Date.now();
      fn();
    } else if (timer === null) {
      timer = setTimeout(() => {
        timer = null;
        last = Date.now();
        fn();
      }, Math.max(wait, 0));
    }
  };
}

/** For pages that re-read the API when events arrive: the stream hands an event over before
 * the collector has written it to the history store (it writes in batches, every half second
 * or so), so besides a throttled read at once, read again settle_ms after the last event. */
export function refresher(fn, interval_ms = 1000, settle_ms = 1500) {
  const soon = throttle(fn, interval_ms);
  let timer = null;
  return () => {
    soon();
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, settle_ms);
  };
}

const pad = (n) => String(n).padStart(2, "0");

/** Epoch seconds -> "YYYY-MM-DD HH:MM:SS" local time ("" for none). */
export function fmtTime(epoch_s) {
  if (typeof epoch_s !== "number" || !isFinite(epoch_s)) return "";
  const d = new Date(epoch_s * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Seconds -> "0.012 s", "4.5 s", "3 min 2 s", "2 h 5 min" ("" for none). */
export function fmtDuration(seconds) {
  if (typeof seconds !== "number" || !isFinite(seconds)) return "";
  const s = Math.max(seconds, 0);
  if (s < 1) return `${s.toFixed(3)} s`;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.round((s % 86400) / 3600)} h`;
}

export function fmtAgo(epoch_s) {
  if (typeof epoch_s !== "number" || !isFinite(epoch_s)) return "never";
  return `${fmtDuration(Date.now() / 1000 - epoch_s)} ago`;
}

/** A state badge; the class keeps letters only, so any state text is safe. */
export function stateBadge(state) {
  const text = state == null ? "" : String(state);
  const kind = text.toLowerCase().replace(/[^a-z]/g, "");
  return el("span", { class: `state state-${kind}` }, text);
}

/** A link to a page of this dashboard; the path parts are URL-encoded. */
export function pageLink(kind, id, text) {
  return el("a", { href: `${BASE}/${kind}/${encodeURIComponent(id)}` }, text ?? id);
}

/** Text cut to max chars with an ellipsis; the full text stays in the title. */
export function cut(value, max = 60) {
  const text = value == null ? "" : String(value);
  if (text.length <= max) return el("span", {}, text);
  return el("span", { title: text.slice(0, 2000) }, text.slice(0, max) + "…");
}

/** A <dl> filled from [label, value] pairs; values are nodes or text. */
export function fillPairs(dl, pairs) {
  clear(dl);
  for (const [label, value] of pairs) {
    dl.append(el("dt", {}, label), el("dd", {}, value ?? ""));
  }
}

/** Hide elements that change things when the dashboard runs read-only. */
export function applyReadOnly() {
  if (!READ_ONLY) return;
  for (const node of document.querySelectorAll(".actions")) node.hidden = true;
}
