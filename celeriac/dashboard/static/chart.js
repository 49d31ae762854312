// Small SVG charts drawn by hand: a line chart with axes and a legend, and a sparkline.
// Sizes are in the SVG's own units (viewBox); CSS scales the drawing to its box.

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

/** A round number at or above max for the y axis (1, 2, 5 times a power of ten). */
export function niceMax(max) {
  if (!(max > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= max) return step * power;
  }
  return 10 * power;
}

function clockLabel(epoch_s) {
  const d = new Date(epoch_s * 1000);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

/**
 * Draw a line chart into container (its previous drawing replaced).
 * times: bucket starts (epoch s); series: [{name, values (numbers or null), kind}] where kind
 * names the CSS class of the line (series-<kind>); format(y) labels the y axis.
 */
export function lineChart(container, times, series, format = (y) => String(y)) {
  const width = 1200;
  const height = 240;
  const left = 56;
  const right = 12;
  const top = 12;
  const bottom = 28;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const values = series.flatMap((s) => s.values.filter((v) => typeof v === "number"));
  const yMax = niceMax(Math.max(0, ...values));
  const n = times.length;
  const x = (i) => left + (n <= 1 ? plotW : (i * plotW) / (n - 1));
  const y = (v) => top + plotH - (v / yMax) * plotH;

  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart-svg", role: "img" });
  root.append(svg("title", {}, series.map((s) => s.name).join(", ")));
  // 1, 5 or 10 times a power of ten: five steps; 2 times one: four (0.5 each)
  const lead = Math.round(yMax / 10 ** Math.floor(Math.log10(yMax)));
  const steps = lead === 2 ? 4 : 5;
  for (let k = 0; k <= steps; k += 1) {
    const v = (yMax * k) / steps;
    root.append(svg("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid-line" }));
    root.append(svg("text", { x: left - 6, y: y(v) + 4, class: "axis-label", "text-anchor": "end" },
      format(v)));
  }
  if (n > 0) {
    const anchors = [[0, "start"], [Math.floor((n - 1) / 2), "middle"], [n - 1, "end"]];
    for (const [i, anchor] of anchors) {
      root.append(svg("text", { x: x(i), y: height - 8, class: "axis-label", "text-anchor": anchor },
        clockLabel(times[i])));
    }
  }
  series.forEach((s, index) => {
    // a gap (null) ends a segment: no line drawn through buckets without data
    let points = [];
    const flush = () => {
      if (points.length === 1) {
        const [px, py] = points[0].split(",");
        root.append(svg("circle", { cx: px, cy: py, r: 2.5, class: `dot series-${s.kind}` }));
      } else if (points.length > 1) {
        root.append(svg("polyline", { points: points.join(" "), class: `line series-${s.kind}` }));
      }
      points = [];
    };
    s.values.forEach((v, i) => {
      if (typeof v === "number" && isFinite(v)) points.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
      else flush();
    });
    flush();
    const lx = left + 8 + index * 150;
    root.append(svg("rect", { x: lx, y: top + 2, width: 12, height: 4, class: `swatch series-${s.kind}` }));
    root.append(svg("text", { x: lx + 16, y: top + 8, class: "legend" }, s.name));
  });
  container.replaceChildren(root);
  return root;
}

/** A small line of recent values (no axes), e.g. a queue's depth. */
export function sparkline(values, width = 160, height = 28) {
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "sparkline" });
  const max = Math.max(1, ...values);
  if (values.length > 1) {
    const step = width / (values.length - 1);
    const points = values.map((v, i) =>
      `${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`);
    root.append(svg("polyline", { points: points.join(" "), class: "line" }));
  }
  return root;
}

/** Horizontal marks of a task's moments (name, epoch s) on one axis, for the task page. */
export function timelineChart(container, moments) {
  const width = 600;
  const height = 64;
  const pad = 16;
  const times = moments.map((m) => m[1]);
  const t0 = Math.min(...times);
  const span = Math.max(Math.max(...times) - t0, 1e-3);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "timeline-svg", role: "img" });
  root.append(svg("title", {}, "timeline"));
  root.append(svg("line", { x1: pad, x2: width - pad, y1: 24, y2: 24, class: "grid-line" }));
  moments.forEach(([name, t], i) => {
    const px = pad + ((t - t0) / span) * (width - 2 * pad);
    root.append(svg("circle", { cx: px, cy: 24, r: 5, class: `mark mark-${name}` }));
    root.append(svg("text", {
      x: px, y: i % 2 ? 52 : 12, class: "axis-label",
      "text-anchor": px < 60 ? "start" : px > width - 60 ? "end" : "middle",
    }, name));
  });
  container.replaceChildren(root);
}
