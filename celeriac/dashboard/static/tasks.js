// Tasks page: search, filters, sort and paging over /api/tasks (the history store does the
// work, so 100k tasks page as fast as 100); live: task-* events refresh the page shown.
import {
  applyReadOnly, clear, cut, el, fmtDuration, fmtTime, getJSON, liveEvents, notice, pageLink,
  refresher, stateBadge, throttle,
} from "./common.js";

const form = document.getElementById("filters");
const body = document.querySelector("#tasks tbody");
const FILTERS = ["search", "state", "taskname", "workername"];
const view = { offset: 0, limit: 50, sort_by: "", total: 0 };
let sequence = 0;

const pad = (n) => String(n).padStart(2, "0");
function toLocalInput(epoch_s) {
  const d = new Date(epoch_s * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
function fromLocalInput(value) {
  if (!value) return "";
  const t = new Date(value).getTime();
  return isFinite(t) ? String(t / 1000) : "";
}

/** The API parameters the form and the view state say. */
function params() {
  const p = { limit: view.limit, offset: view.offset, sort_by: view.sort_by };
  for (const name of FILTERS) p[name] = form.elements[name].value.trim();
  p.received_start = fromLocalInput(form.elements.received_start.value);
  p.received_end = fromLocalInput(form.elements.received_end.value);
  return p;
}

function ensureOption(select, value) {
  if (value && ![...select.options].some((o) => o.value === value)) {
    select.append(el("option", { value }, value));
  }
}

/** Read the filters from the address bar, so a filtered list can be linked and reloaded. */
function fromAddress() {
  const q = new URLSearchParams(window.location.search);
  for (const name of FILTERS) {
    const value = q.get(name) || "";
    if (form.elements[name].tagName === "SELECT") ensureOption(form.elements[name], value);
    form.elements[name].value = value;
  }
  for (const name of ["received_start", "received_end"]) {
    const value = Number(q.get(name));
    form.elements[name].value = q.get(name) && isFinite(value) ? toLocalInput(value) : "";
  }
  const limit = Number(q.get("limit"));
  if ([20, 50, 100, 500].includes(limit)) view.limit = limit;
  form.elements.limit.value = String(view.limit);
  view.offset = Math.max(0, Number(q.get("offset")) || 0);
  view.sort_by = q.get("sort_by") || "";
}

function toAddress(p) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(p)) {
    if (value !== "" && value !== null && !(key === "offset" && !value)) q.set(key, String(value));
  }
  const text = q.toString();
  window.history.replaceState(null, "", text ? `?${text}` : window.location.pathname);
}

function row(task) {
  return el("tr", { "data-task": task.uuid },
    el("td", {}, cut(task.name, 40)),
    el("td", { class: "mono" }, pageLink("task", task.uuid)),
    el("td", {}, stateBadge(task.state)),
    el("td", { class: "mono" }, cut(task.args)),
    el("td", { class: "mono" }, cut(task.kwargs)),
    el("td", { class: "mono" }, cut(task.result ?? task.exception)),
    el("td", {}, fmtTime(task.received)),
    el("td", {}, fmtTime(task.started)),
    el("td", { class: "num" }, fmtDuration(task.runtime)),
    el("td", {}, task.worker ? pageLink("worker", task.worker) : ""));
}

function showSort() {
  for (const button of document.querySelectorAll("#tasks th button[data-sort]")) {
    const field = button.dataset.sort;
    const state = view.sort_by === field ? "asc" : view.sort_by === `-${field}` ? "desc" : "none";
    button.closest("th").setAttribute("aria-sort",
      state === "asc" ? "ascending" : state === "desc" ? "descending" : "none");
  }
}

async function load() {
  const mine = ++sequence;
  const p = params();
  toAddress(p);
  showSort();
  try {
    const { data, headers } = await getJSON("/api/tasks", p);
    if (mine !== sequence) return; // a newer request is on its way
    const tasks = Object.values(data);
    view.total = Number(headers.get("X-Total-Count")) || tasks.length;
    clear(body);
    for (const task of tasks) {
      body.append(row(task));
      if (task.name) ensureOption(form.elements.taskname, String(task.name));
      if (task.worker) ensureOption(form.elements.workername, String(task.worker));
    }
    choicesSoon();
    document.getElementById("empty").hidden = tasks.length > 0;
    const first = tasks.length ? view.offset + 1 : 0;
    document.getElementById("range").textContent =
      `${first}–${view.offset + tasks.length} of ${view.total}`;
    document.getElementById("prev").disabled = view.offset <= 0;
    document.getElementById("next").disabled = view.offset + tasks.length >= view.total;
    notice("", false, "load");
  } catch (error) {
    if (mine === sequence) notice(`Could not list the tasks: ${error.message}`, true, "load");
  }
}
const refreshSoon = refresher(load);

async function loadChoices() {
  try {
    const [{ data: types }, { data: workers }] = await Promise.all([
      getJSON("/api/task/types"), getJSON("/api/dashboard/workers")]);
    for (const name of types["task-types"] || []) ensureOption(form.elements.taskname, name);
    for (const name of Object.keys(workers).sort()) ensureOption(form.elements.workername, name);
  } catch (error) {
    notice(`Could not read task names or workers: ${error.message}`, true, "load");
  }
}

const choicesSoon = throttle(loadChoices, 3000);

form.addEventListener("submit", (event) => {
  event.preventDefault();
  view.offset = 0;
  view.limit = Number(form.elements.limit.value) || 50;
  load();
});
form.addEventListener("reset", () => {
  setTimeout(() => {
    view.offset = 0;
    view.sort_by = "";
    load();
  }, 0);
});
for (const name of ["state", "taskname", "workername", "limit"]) {
  form.elements[name].addEventListener("change", () => form.requestSubmit());
}
document.getElementById("prev").addEventListener("click", () => {
  view.offset = Math.max(0, view.offset - view.limit);
  load();
});
document.getElementById("next").addEventListener("click", () => {
  view.offset += view.limit;
  load();
});
for (const button of document.querySelectorAll("#tasks th button[data-sort]")) {
  button.addEventListener("click", () => {
    const field = button.dataset.sort;
    view.sort_by = view.sort_by === `-${field}` ? field : `-${field}`;
    view.offset = 0;
    load();
  });
}

liveEvents(["task-*"], (event) => {
  if (form.elements.live.checked) refreshSoon();
  if (event.type === "task-received" && event.name) ensureOption(form.elements.taskname, String(event.name));
  if (event.hostname) ensureOption(form.elements.workername, String(event.hostname));
}, () => {
  if (form.elements.live.checked) refreshSoon();
});
applyReadOnly();
fromAddress();
loadChoices();
load();
