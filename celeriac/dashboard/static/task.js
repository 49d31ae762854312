// One task: details, args/kwargs/result/traceback (as text), timeline, retries, its place in
// a canvas (root, parent, children), and Revoke. Live: its events reload it.
import {
  READ_ONLY, SUBJECT, applyReadOnly, clear, el, fillPairs, fmtDuration, fmtTime, getJSON,
  liveEvents, notice, pageLink, post, refresher, stateBadge,
} from "./common.js";
import { timelineChart } from "./chart.js";

const id = SUBJECT;
const MOMENTS = ["sent", "received", "started", "retried", "succeeded", "failed", "revoked", "rejected"];
const READY = new Set(["SUCCESS", "FAILURE", "REVOKED", "REJECTED", "IGNORED"]);
const childStates = new Map();
let current = null;

function text(id_, value) {
  document.getElementById(id_).textContent = value == null || value === "" ? "—" : String(value);
}

function show(task) {
  current = task;
  document.getElementById("missing").hidden = true;
  document.getElementById("task-name").textContent = task.name || "(name not known yet)";
  document.getElementById("task-state").replaceChildren(stateBadge(task.state));
  fillPairs(document.getElementById("details"), [
    ["UUID", el("code", {}, task.uuid)],
    ["State", stateBadge(task.state)],
    ["Worker", task.worker ? pageLink("worker", task.worker) : ""],
    ["Queue", task.queue || task.routing_key || ""],
    ["Retries", task.retries ?? 0],
    ["Runtime", fmtDuration(task.runtime)],
    ["ETA", task.eta || ""],
    ["Expires", task.expires || ""],
    ["Client", task.client || ""],
    ["Last event", fmtTime(task.timestamp)],
  ]);
  text("args", task.args);
  text("kwargs", task.kwargs);
  text("result", task.result);
  const failed = Boolean(task.exception || task.traceback);
  document.getElementById("failure").hidden = !failed;
  document.getElementById("failure-title").textContent =
    task.state === "FAILURE" ? "Exception" : "Exception of the last retry";
  text("exception", task.exception);
  text("traceback", task.traceback);

  const moments = MOMENTS.filter((m) => typeof task[m] === "number").map((m) => [m, task[m]])
    .sort((a, b) => a[1] - b[1]);
  const list = document.getElementById("timeline");
  clear(list);
  const t0 = moments.length ? moments[0][1] : 0;
  for (const [name, t] of moments) {
    list.append(el("li", {}, el("span", { class: "moment" }, name), ` ${fmtTime(t)}`,
      el("span", { class: "muted" }, t > t0 ? ` (+${fmtDuration(t - t0)})` : "")));
  }
  const chart = document.getElementById("timeline-chart");
  if (moments.length > 1) timelineChart(chart, moments);
  else clear(chart);

  fillPairs(document.getElementById("family"), [
    ["Root", task.root_id && task.root_id !== task.uuid ? pageLink("task", task.root_id) : "this task"],
    ["Parent", task.parent_id ? pageLink("task", task.parent_id) : "none"],
    ["Children", Array.isArray(task.children) ? String(task.children.length) : "0"],
  ]);
  const children = document.getElementById("children");
  clear(children);
  for (const child of (task.children || []).slice(0, 200)) {
    children.append(el("li", { "data-task": child }, pageLink("task", child), " ",
      childStates.has(child) ? stateBadge(childStates.get(child)) : ""));
  }
  loadChildStates(task.children || []);
  document.getElementById("revoke").disabled = READ_ONLY || READY.has(task.state);
}

async function loadChildStates(children) {
  const wanted = children.slice(0, 20).filter((c) => !READY.has(childStates.get(c)));
  if (!wanted.length) return;
  const found = await Promise.all(wanted.map((c) =>
    getJSON(`/api/task/info/${encodeURIComponent(c)}`).then((r) => r.data).catch(() => null)));
  let changed = false;
  for (const child of found) {
    if (child && childStates.get(child.uuid) !== child.state) {
      childStates.set(child.uuid, child.state);
      changed = true;
    }
  }
  if (changed && current) show(current);
}

async function load() {
  try {
    const { data } = await getJSON(`/api/task/info/${encodeURIComponent(id)}`);
    show(data);
    notice("", false, "load");
  } catch (error) {
    if (error.status === 404) {
      document.getElementById("missing").hidden = false;
      document.getElementById("task-state").replaceChildren(stateBadge("UNKNOWN"));
    } else {
      notice(`Could not read the task: ${error.message}`, true, "load");
    }
  }
}
const loadSoon = refresher(load, 300, 1200);

document.getElementById("revoke-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const terminate = form.elements.terminate.checked;
  try {
    const reply = await post(`/api/task/revoke/${encodeURIComponent(id)}`,
      terminate ? { terminate: true, signal: form.elements.signal.value } : { terminate: false });
    notice(reply.message || "revoked");
    loadSoon();
  } catch (error) {
    notice(`Revoke failed: ${error.message}`, true);
  }
});

liveEvents(["task-*"], (event) => {
  if (event.uuid === id || event.parent_id === id || childStates.has(event.uuid)) loadSoon();
}, loadSoon);
applyReadOnly();
load();
