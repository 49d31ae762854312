// Queues page: depth and oldest message age per queue (/api/queues/length, read through the
// broker's public counters), polled; the rate is the change in depth per second over the
// last minute of samples, and a sparkline shows the last five minutes.
import { applyReadOnly, clear, el, fmtDuration, getJSON, notice } from "./common.js";
import { sparkline } from "./chart.js";

const POLL_MS = 3000;
const KEEP_S = 300;
const RATE_S = 60;
const samples = new Map(); // queue name -> [[t_s, messages], ...]
const body = document.querySelector("#queues tbody");
document.getElementById("live").textContent = `every ${POLL_MS / 1000} s`;

function rate(points) {
  const now = points[points.length - 1];
  const from = points.find(([t]) => t >= now[0] - RATE_S) || points[0];
  if (!from || now[0] - from[0] < 1) return null;
  return (now[1] - from[1]) / (now[0] - from[0]);
}

function render(queues) {
  clear(body);
  for (const q of queues) {
    const points = samples.get(q.name) || [];
    const r = points.length > 1 ? rate(points) : null;
    body.append(el("tr", { "data-queue": q.name },
      el("td", {}, String(q.name)),
      el("td", { class: "num" }, q.messages ?? ""),
      el("td", { class: "num" }, typeof q.oldest_age_s === "number" ? fmtDuration(q.oldest_age_s) : "—"),
      el("td", { class: "num" }, r === null ? "…" : `${r > 0 ? "+" : ""}${r.toFixed(2)}`),
      el("td", {}, sparkline(points.map(([, m]) => m)))));
  }
  document.getElementById("empty").hidden = queues.length > 0;
}

async function poll() {
  try {
    const { data } = await getJSON("/api/queues/length");
    const queues = Array.isArray(data.active_queues) ? data.active_queues : [];
    const now = Date.now() / 1000;
    for (const q of queues) {
      const points = samples.get(q.name) || [];
      if (typeof q.messages === "number") points.push([now, q.messages]);
      while (points.length && points[0][0] < now - KEEP_S) points.shift();
      samples.set(q.name, points);
    }
    render(queues);
    notice("", false, "load");
  } catch (error) {
    notice(`Could not read the queues: ${error.message}`, true, "load");
  }
}

applyReadOnly();
poll();
setInterval(poll, POLL_MS);
