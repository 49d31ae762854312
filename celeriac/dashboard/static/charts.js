// Charts page: throughput, runtime and failures per time bucket. The history store's series
// (/api/dashboard/series) draws the window; task events from the stream add to the newest
// buckets as they arrive, and the series is read again every minute to stay exact.
import { applyReadOnly, getJSON, liveEvents, notice, throttle } from "./common.js";
import { lineChart } from "./chart.js";

const form = document.getElementById("window");
let windowS = 3600;
let bucketS = 60;
let buckets = []; // [{t, succeeded, failed, received, runtime_avg_s, runtime_n}]

function draw() {
  const times = buckets.map((b) => b.t);
  lineChart(document.getElementById("throughput"), times, [
    { name: "received", kind: "received", values: buckets.map((b) => b.received) },
    { name: "succeeded", kind: "succeeded", values: buckets.map((b) => b.succeeded) },
  ], (y) => (Number.isInteger(y) ? String(y) : y.toFixed(1)));
  lineChart(document.getElementById("runtime"), times, [
    { name: "mean runtime (s)", kind: "runtime", values: buckets.map((b) => b.runtime_avg_s) },
  ], (y) => (y >= 10 ? y.toFixed(0) : y.toFixed(2)));
  lineChart(document.getElementById("failures"), times, [
    { name: "failed", kind: "failed", values: buckets.map((b) => b.failed) },
  ], (y) => (Number.isInteger(y) ? String(y) : y.toFixed(1)));
}
const drawSoon = throttle(draw, 500);

async function load() {
  try {
    const { data } = await getJSON("/api/dashboard/series", { bucket_s: bucketS, window_s: windowS });
    buckets = (data.series || []).map((b) => ({
      ...b, runtime_n: typeof b.runtime_avg_s === "number" ? b.succeeded : 0,
    }));
    draw();
    notice("", false, "load");
  } catch (error) {
    notice(`Could not read the series: ${error.message}`, true, "load");
  }
}

/** The bucket an event time falls in, appending empty buckets up to it (the window slides). */
function bucketAt(t) {
  const start = Math.floor(t / bucketS) * bucketS;
  if (!buckets.length) return null;
  while (buckets[buckets.length - 1].t < start) {
    buckets.push({ t: buckets[buckets.length - 1].t + bucketS, succeeded: 0, failed: 0,
      received: 0, runtime_avg_s: null, runtime_n: 0 });
    if (buckets.length > windowS / bucketS + 1) buckets.shift();
  }
  return buckets.find((b) => b.t === start) || null;
}

liveEvents(["task-received", "task-succeeded", "task-failed"], (event) => {
  const t = typeof event.timestamp === "number" ? event.timestamp : Date.now() / 1000;
  const bucket = bucketAt(t);
  if (!bucket) return;
  if (event.type === "task-received") bucket.received += 1;
  else if (event.type === "task-failed") bucket.failed += 1;
  else {
    bucket.succeeded += 1;
    if (typeof event.runtime === "number" && isFinite(event.runtime)) {
      const n = bucket.runtime_n;
      bucket.runtime_avg_s = ((bucket.runtime_avg_s || 0) * n + event.runtime) / (n + 1);
      bucket.runtime_n = n + 1;
    }
  }
  drawSoon();
}, load);

form.elements.window.addEventListener("change", () => {
  [windowS, bucketS] = form.elements.window.value.split(":").map(Number);
  load();
});
applyReadOnly();
load();
setInterval(load, 60000);
