// Metric charts with uPlot. The server decimates every series to the
// smallest and largest value of each pixel column of the visible range,
// so a chart asks again whenever the range changes (a zoom, a reset) and
// never holds more than a few thousand points a series, whatever the
// series' length, and no spike disappears.
import { apiURL, getJSON, h, listen } from "./dom.js";

const PALETTE = ["#3b6ea5", "#d9534f", "#5cb85c", "#f0ad4e", "#8e6bbf", "#17a2b8", "#e83e8c", "#6c757d", "#20c997", "#fd7e14"];

export function color(i) {
  return PALETTE[i % PALETTE.length];
}

function cssVar(name, fallback) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

// ema smooths values as TensorBoard does: weight in [0, 1), 0 for none.
function ema(ys, weight) {
  if (!weight) return ys;
  const out = new Array(ys.length);
  let last = null;
  for (let i = 0; i < ys.length; i++) {
    const y = ys[i];
    if (y === null || !isFinite(y)) { out[i] = y; continue; }
    last = last === null ? y : last * weight + (1 - weight) * y;
    out[i] = last;
  }
  return out;
}

// Chart draws metrics of one or more runs on one x axis.
//   sources: [{store, id, name, label}]
//   opts: {axis: "step"|"time"|"rel", log: bool, smooth: 0..0.99, height}
export class Chart {
  constructor(el, sources, opts) {
    this.el = el;
    this.sources = sources;
    this.opts = { axis: "step", log: false, smooth: 0, height: 260, ...opts };
    this.data = sources.map(() => ({ xs: [], ys: [], count: 0 }));
    this.range = null; // null: the whole series; else [from, to] on the axis
    this.plot = null;
    this.info = h("div", { class: "chart-info muted" });
    this.box = h("div", { class: "chart-plot" });
    el.appendChild(this.box);
    el.appendChild(this.info);
    this.seq = 0;
    this.onResize = () => { if (this.plot) this.plot.setSize({ width: this.width(), height: this.opts.height }); };
    listen(window, "resize", this.onResize);
  }

  width() {
    return Math.max(200, Math.floor(this.el.clientWidth || 600));
  }

  // load asks the server for every source over the range (null: all).
  async load(range) {
    this.range = range;
    const seq = ++this.seq;
    const px = this.width();
    const axis = this.opts.axis;
    const answers = await Promise.all(this.sources.map((s) => getJSON("api/metric", {
      store: s.store, id: s.id, name: s.name, x: axis, px,
      from: range ? range[0] : "", to: range ? range[1] : "",
    })));
    if (seq !== this.seq) return; // a newer load went out
    let shown = 0, total = 0, decimated = false;
    answers.forEach((a, i) => {
      // Time axes come as offsets from x0; uPlot wants Unix seconds.
      const x0 = axis === "time" ? a.x0 : 0;
      this.data[i] = { xs: a.xs.map((x) => x + x0), ys: a.ys, count: a.count, x0: a.x0 };
      shown += a.in_range;
      total += a.count;
      decimated = decimated || a.decimated;
    });
    this.info.textContent = `${shown.toLocaleString()} of ${total.toLocaleString()} points in range` +
      (decimated ? ", drawn as the smallest and largest value of each pixel column" : "") +
      (range ? " · double-click to see all" : " · drag to zoom");
    this.draw();
  }

  // append adds live points [step, time, value] to a source; the chart
  // follows when it shows the whole series.
  append(i, points) {
    if (this.range) return;
    const d = this.data[i];
    for (const [step, time, value] of points) {
      let x = step;
      if (this.opts.axis === "time") x = time;
      else if (this.opts.axis === "rel") x = time - (d.x0 || 0);
      if (x === null || x === undefined) continue;
      d.xs.push(x);
      d.ys.push(typeof value === "number" ? value : null);
    }
    d.count += points.length;
    // Past a few points per pixel, ask for the decimated series again.
    if (d.xs.length > 4 * this.width()) {
      this.load(null);
      return;
    }
    const total = this.data.reduce((n, x) => n + x.count, 0);
    this.info.textContent = `${total.toLocaleString()} of ${total.toLocaleString()} points in range · drag to zoom`;
    this.draw();
  }

  aligned() {
    const log = this.opts.log;
    const fix = (ys) => ema(ys, this.opts.smooth).map((y) => (y === null || !isFinite(y) || (log && y <= 0) ? null : y));
    if (this.data.length === 1) {
      return [this.data[0].xs, fix(this.data[0].ys)];
    }
    // Several runs: one x column, a gap where a run has no point.
    const tables = this.data.map((d) => [d.xs, fix(d.ys)]);
    return uPlot.join(tables);
  }

  draw() {
    const data = this.aligned();
    const grid = cssVar("--grid", "#ddd"), fg = cssVar("--muted", "#666");
    const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } };
    const self = this;
    const opts = {
      width: this.width(),
      height: this.opts.height,
      scales: {
        x: { time: this.opts.axis === "time" },
        y: { distr: this.opts.log ? 3 : 1 },
      },
      axes: [{ ...axis, label: { step: "step", time: "", rel: "seconds since start" }[this.opts.axis] }, axis],
      series: [{ label: this.opts.axis }].concat(this.sources.map((s, i) => ({
        label: s.label, stroke: color(i), width: 1.25, spanGaps: this.sources.length > 1,
      }))),
      cursor: {
        drag: { x: true, y: false, setScale: false },
        bind: {
          dblclick: () => () => { self.load(null); return null; },
        },
      },
      hooks: {
        setSelect: [(u) => {
          if (u.select.width < 3) return;
          const from = u.posToVal(u.select.left, "x");
          const to = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({ left: 0, width: 0 }, false);
          self.load([from, to]);
        }],
      },
      legend: { live: true },
    };
    if (this.plot) this.plot.destroy();
    this.plot = new uPlot(opts, data, this.box);
    if (this.range) this.plot.setScale("x", { min: this.range[0], max: this.range[1] });
  }

  set(opts) {
    const axisChanged = opts.axis && opts.axis !== this.opts.axis;
    Object.assign(this.opts, opts);
    if (axisChanged) this.load(null);
    else this.draw();
  }

  destroy() {
    window.removeEventListener("resize", this.onResize);
    this.seq++;
    if (this.plot) this.plot.destroy();
    this.plot = null;
  }
}

// controls makes the x-axis, log and smoothing controls of charts.
export function chartControls(onChange) {
  const axis = h("select", { "aria-label": "x axis" },
    h("option", { value: "step" }, "x: step"),
    h("option", { value: "time" }, "x: time"),
    h("option", { value: "rel" }, "x: relative time"));
  const log = h("input", { type: "checkbox", "aria-label": "log scale" });
  const smooth = h("input", { type: "range", min: "0", max: "0.99", step: "0.01", value: "0", "aria-label": "smoothing" });
  listen(axis, "change", () => onChange({ axis: axis.value }));
  listen(log, "change", () => onChange({ log: log.checked }));
  listen(smooth, "change", () => onChange({ smooth: Number(smooth.value) }));
  return h("div", { class: "chart-controls" }, axis, h("label", null, log, " log scale"), h("label", null, "smoothing ", smooth));
}

export function metricCSV(store, id, name) {
  return apiURL("api/metric.csv", { store, id, name }).href;
}
