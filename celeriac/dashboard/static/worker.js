// One worker: its live state (events), its inspect replies (/api/workers?workername=),
// and the pool/queue controls (hidden when read-only).
import {
  SUBJECT, applyReadOnly, clear, el, fillPairs, fmtAgo, fmtDuration, getJSON, liveEvents,
  notice, pageLink, post, refresher,
} from "./common.js";

const name = SUBJECT;
const path = encodeURIComponent(name);

function list(id, items, item) {
  const node = document.getElementById(id);
  clear(node);
  const rows = Array.isArray(items) ? items : [];
  for (const value of rows) node.append(el("li", {}, item(value)));
  if (!rows.length) node.append(el("li", { class: "muted" }, "none"));
}

function showState(w) {
  fillPairs(document.getElementById("state"), [
    ["Status", w ? el("span", { class: w.status ? "status status-online" : "status status-offline" },
      w.status ? "Online" : "Offline") : "not seen by events"],
    ["Active", w?.active ?? ""],
    ["Processed", w?.processed ?? ""],
    ["Load", Array.isArray(w?.loadavg) ? w.loadavg.join(", ") : ""],
    ["Last heartbeat", w ? fmtAgo(w.timestamp) : ""],
    ["Heartbeat every", w?.freq ? `${w.freq} s` : ""],
    ["PID", w?.pid ?? ""],
    ["Software", w ? [w.sw_ident, w.sw_ver, w.sw_sys].filter(Boolean).join(" ") : ""],
  ]);
}

function taskItem(t) {
  if (!t || typeof t !== "object") return String(t);
  return el("span", {}, pageLink("task", String(t.id), String(t.id)), " ",
    el("code", {}, String(t.name ?? t.type ?? "")));
}

function showInspect(info) {
  const stats = info.stats || {};
  const pool = stats.pool || {};
  fillPairs(document.getElementById("pool"), [
    ["Max concurrency", pool["max-concurrency"] ?? ""],
    ["Processes", Array.isArray(pool.processes) ? pool.processes.join(", ") : ""],
    ["Prefetch", stats.prefetch_count ?? ""],
    ["Uptime", typeof stats.uptime === "number" ? fmtDuration(stats.uptime) : ""],
    ["Broker", stats.broker ? String(stats.broker.hostname ?? stats.broker.transport ?? "") : ""],
    ["Totals", stats.total ? Object.entries(stats.total).map(([k, v]) => `${k}: ${v}`).join(", ") : ""],
  ]);
  list("queues", info.active_queues, (q) => String(q && q.name !== undefined ? q.name : q));
  list("active", info.active, taskItem);
  list("reserved", info.reserved, taskItem);
  list("registered", info.registered, (t) => el("code", {}, String(t)));
}

async function loadState() {
  try {
    const { data } = await getJSON("/api/dashboard/workers");
    showState(data[name]);
  } catch (error) {
    notice(`Could not read the worker: ${error.message}`, true, "load");
  }
}

async function loadInspect(refresh) {
  try {
    const { data } = await getJSON("/api/workers", { workername: name, refresh: refresh ? 1 : "" });
    showInspect(data[name] || {});
  } catch (error) {
    notice(error.status === 404 ? "The worker did not answer." : error.message, true, "load");
  }
}
const inspectSoon = refresher(() => loadInspect(true), 2000, 2500);

async function act(action, params) {
  const where = {
    grow: "pool/grow", shrink: "pool/shrink", restart: "pool/restart",
    "add-consumer": "queue/add-consumer", "cancel-consumer": "queue/cancel-consumer",
  }[action];
  const url = action === "shutdown" ? `/api/worker/shutdown/${path}` : `/api/worker/${where}/${path}`;
  try {
    const reply = await post(url, params);
    notice(reply.message || "done");
    inspectSoon();
  } catch (error) {
    notice(error.message, true);
  }
}

document.getElementById("pool-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const action = event.submitter ? event.submitter.value : "grow";
  if (action === "shutdown" && !window.confirm(`Shut down ${name}?`)) return;
  const n = Number(event.target.elements.n.value) || 1;
  act(action, action === "grow" || action === "shrink" ? { n } : {});
});
document.getElementById("queue-form").addEventListener("submit", (event) => {
  event.preventDefault();
  act(event.submitter ? event.submitter.value : "add-consumer",
    { queue: event.target.elements.queue.value });
});

liveEvents(["worker-*", "task-started", "task-succeeded", "task-failed"], (event) => {
  if (event.hostname !== name) return;
  if (event.type.startsWith("worker-")) loadState();
  else inspectSoon();
}, loadState);
applyReadOnly();
loadState();
loadInspect(true);
setInterval(loadState, 5000);
