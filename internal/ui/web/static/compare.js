// Compare runs: the config side by side (differences only, by default),
// final and best metric values, overlaid metric charts, and a scatter of
// one config value against one metric.
import { fmtDuration, fmtValue, getJSON, h, listen, pageURL, replace, runLink, statusBadge } from "./dom.js";
import { Chart, chartControls, color } from "./plot.js";

export async function showCompare(ctx) {
  const { main, stores, params } = ctx;
  const several = stores.stores.length > 1;
  const res = await getJSON("api/compare", { ids: params.get("ids") || "" });
  const runs = res.runs;
  document.title = "compare " + runs.map((r) => "#" + r.id).join(" ") + " · sacred ui";
  ctx.crumbs(h("a", { href: pageURL(""), "data-nav": true }, "runs"), h("span", null, "compare " + runs.map((r) => "#" + r.id).join(", ")));

  const label = (r) => (several ? stores.stores[r.store].label + " " : "") + "#" + r.id;
  const heads = runs.map((r, i) => h("th", { scope: "col" },
    h("span", { class: "swatch", "data-color": i % 10 }), h("a", { href: runLink(r.store, r.id, several), "data-nav": true }, label(r))));

  const summary = h("table", { class: "kv compare" },
    h("thead", null, h("tr", null, h("th", null, ""), heads)),
    h("tbody", null,
      h("tr", null, h("th", { scope: "row" }, "name"), runs.map((r) => h("td", null, r.name))),
      h("tr", null, h("th", { scope: "row" }, "status"), runs.map((r) => h("td", null, statusBadge(r.status)))),
      h("tr", null, h("th", { scope: "row" }, "duration"), runs.map((r) => h("td", null, fmtDuration(r.duration)))),
      h("tr", null, h("th", { scope: "row" }, "result"), runs.map((r) => h("td", null, r.has_result ? fmtValue(r.result) : "")))));

  // Config difference.
  const onlyDiff = h("input", { type: "checkbox", checked: true, id: "only-diff" });
  const configBody = h("tbody");
  function renderConfig() {
    const rows = res.config.filter((c) => !onlyDiff.checked || c.differs);
    replace(configBody, rows.length ? rows.map((c) => h("tr", { class: c.differs ? "differs" : null },
      h("th", { scope: "row" }, c.path.replace(/^config\./, "")),
      c.values.map((v, i) => h("td", null, c.present[i] ? fmtValue(v) : h("span", { class: "muted" }, "—"))))) :
      h("tr", null, h("td", { colspan: runs.length + 1, class: "muted" }, "The configs are the same.")));
  }
  listen(onlyDiff, "change", renderConfig);
  renderConfig();

  // Metrics: final and best values.
  const metricRows = res.metrics.map((m) => [
    h("tr", null, h("th", { scope: "row" }, m.name + " last"), m.last.map((v) => h("td", { class: "num" }, fmtValue(v === null ? undefined : v)))),
    h("tr", null, h("th", { scope: "row" }, m.name + " min"), m.min.map((v) => h("td", { class: "num" }, fmtValue(v === null ? undefined : v)))),
    h("tr", null, h("th", { scope: "row" }, m.name + " max"), m.max.map((v) => h("td", { class: "num" }, fmtValue(v === null ? undefined : v)))),
  ]);

  // Overlays: one chart per metric, every run that has it.
  const charts = [];
  const chartsBox = h("div", { class: "charts" });
  for (const m of res.metrics) {
    const sources = [];
    runs.forEach((r, i) => { if (m.last[i] !== null) sources.push({ store: r.store, id: r.id, name: m.name, label: label(r), color: i }); });
    if (!sources.length) continue;
    const holder = h("div", { class: "chart" });
    chartsBox.appendChild(h("div", { class: "chart-card" }, h("h3", null, m.name), holder));
    const c = new Chart(holder, sources, {});
    charts.push(c);
    c.load(null).catch((e) => { holder.textContent = e.message; });
  }

  // Scatter: a config value against a metric's final value.
  const numericPaths = res.config.filter((c) => c.values.some((v) => typeof v === "number")).map((c) => c.path);
  const px = h("select", { "aria-label": "parameter" }, numericPaths.map((p) => h("option", { value: p }, p.replace(/^config\./, ""))));
  const py = h("select", { "aria-label": "metric" }, res.metrics.flatMap((m) => ["last", "min", "max"].map((a) => h("option", { value: m.name + "\u0000" + a }, `${m.name} ${a}`))));
  const scatterBox = h("div", { class: "chart scatter" });
  let scatter = null;
  function renderScatter() {
    if (scatter) scatter.destroy();
    scatter = null;
    if (!px.value || !py.value) return;
    const cfg = res.config.find((c) => c.path === px.value);
    const [mname, agg] = py.value.split("\u0000");
    const m = res.metrics.find((x) => x.name === mname);
    const pts = [];
    runs.forEach((r, i) => {
      const x = cfg.values[i], y = m[agg][i];
      if (typeof x === "number" && typeof y === "number") pts.push([x, y, i]);
    });
    pts.sort((a, b) => a[0] - b[0]);
    const xs = pts.map((p) => p[0]);
    const series = [{ label: px.value.replace(/^config\./, "") }];
    const data = [xs];
    runs.forEach((r, i) => {
      series.push({ label: label(r), stroke: color(i), paths: () => null, points: { show: true, size: 9, fill: color(i) } });
      data.push(pts.map((p) => (p[2] === i ? p[1] : null)));
    });
    scatter = new uPlot({ width: Math.max(300, scatterBox.clientWidth || 600), height: 260, scales: { x: { time: false } }, series }, data, scatterBox);
  }
  listen(px, "change", renderScatter);
  listen(py, "change", renderScatter);

  replace(main,
    h("section", { class: "card" }, h("h2", null, "Runs"), summary),
    h("section", { class: "card", id: "config-diff" }, h("h2", null, "Config"),
      h("label", null, onlyDiff, " differences only"),
      h("table", { class: "kv compare" }, h("thead", null, h("tr", null, h("th", null, "key"), heads.map((x) => x.cloneNode(true)))), configBody)),
    res.metrics.length ? h("section", { class: "card" }, h("h2", null, "Metrics"),
      h("table", { class: "kv compare" }, h("thead", null, h("tr", null, h("th", null, ""), heads.map((x) => x.cloneNode(true)))), h("tbody", null, metricRows)),
      chartControls((o) => charts.forEach((c) => c.set(o))), chartsBox) : null,
    numericPaths.length && res.metrics.length ? h("section", { class: "card" }, h("h2", null, "Parameter against metric"),
      h("div", { class: "toolbar" }, px, py), scatterBox) : null);
  renderScatter();

  return {
    close() {
      charts.forEach((c) => c.destroy());
      if (scatter) scatter.destroy();
    },
  };
}
