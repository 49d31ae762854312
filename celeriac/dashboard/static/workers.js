// Workers page: live worker state from worker-* events (and a poll, for workers that go
// silent), pool sizes from inspect replies (/api/workers).
import {
  applyReadOnly, clear, el, fmtAgo, getJSON, liveEvents, notice, pageLink, throttle,
} from "./common.js";

const workers = new Map(); // hostname -> the collector's worker dict
const pools = new Map(); // hostname -> stats.pool from inspect
const body = document.querySelector("#workers tbody");

function poolText(hostname) {
  const pool = pools.get(hostname);
  if (!pool || typeof pool !== "object") return "";
  const size = pool["max-concurrency"];
  const kind = pool.implementation || pool.pool || "";
  const processes = Array.isArray(pool.processes) ? pool.processes.length : null;
  const parts = [];
  if (kind) parts.push(String(kind).split(":").pop());
  if (size !== undefined) parts.push(`max ${size}`);
  if (processes !== null) parts.push(`${processes} running`);
  return parts.join(", ");
}

function load(loadavg) {
  return Array.isArray(loadavg) ? loadavg.map((v) => Number(v).toFixed(2)).join(", ") : "";
}

function render() {
  clear(body);
  const names = [...workers.keys()].sort();
  let online = 0;
  for (const name of names) {
    const w = workers.get(name);
    const up = Boolean(w.status);
    if (up) online += 1;
    const software = [w.sw_ident, w.sw_ver, w.sw_sys].filter(Boolean).join(" ");
    body.append(el("tr", { "data-worker": name, class: up ? "online" : "offline" },
      el("td", {}, pageLink("worker", name)),
      el("td", {}, el("span", { class: up ? "status status-online" : "status status-offline" },
        up ? "Online" : "Offline")),
      el("td", {}, poolText(name)),
      el("td", { class: "num" }, w.active ?? ""),
      el("td", { class: "num" }, w.processed ?? ""),
      el("td", { class: "num" }, load(w.loadavg)),
      el("td", {}, fmtAgo(w.timestamp)),
      el("td", {}, software)));
  }
  document.getElementById("empty").hidden = names.length > 0;
  document.getElementById("summary").textContent =
    `${online} online, ${names.length - online} offline`;
}
const renderSoon = throttle(render, 250);

async function loadWorkers() {
  try {
    const { data } = await getJSON("/api/dashboard/workers");
    workers.clear();
    for (const [name, info] of Object.entries(data)) workers.set(name, info);
    renderSoon();
  } catch (error) {
    notice(`Could not read the workers: ${error.message}`, true, "load");
  }
}

async function loadPools(refresh) {
  try {
    const { data } = await getJSON("/api/workers", refresh ? { refresh: 1 } : {});
    for (const [name, info] of Object.entries(data)) {
      if (info && info.stats) pools.set(name, info.stats.pool);
    }
    notice("", false, "load");
    renderSoon();
  } catch (error) {
    notice(`Could not ask the workers: ${error.message}`, true, "load");
  }
}
const loadPoolsSoon = throttle(() => loadPools(false), 2000);

liveEvents(["worker-*"], (event) => {
  const name = typeof event.hostname === "string" ? event.hostname : null;
  if (!name) return;
  const known = workers.get(name) || { hostname: name };
  const update = { ...known, timestamp: event.timestamp ?? known.timestamp };
  for (const key of ["active", "processed", "loadavg", "freq", "sw_ident", "sw_ver", "sw_sys", "pid"]) {
    if (key in event) update[key] = event[key];
  }
  update.status = event.type !== "worker-offline";
  workers.set(name, update);
  if (!pools.has(name) && update.status) loadPoolsSoon();
  renderSoon();
}, loadWorkers);

document.getElementById("refresh").addEventListener("click", () => loadPools(true));
applyReadOnly();
loadWorkers();
loadPools(false);
setInterval(loadWorkers, 5000);
setInterval(renderSoon, 1000); // "last heartbeat" ages
