// One run: its facts, metrics, output (live while it runs), config, info,
// artifacts with previews, experiment, host and meta.
import {
  apiURL, clear, downloadLink, fmtDuration, fmtTime, fmtValue, getJSON, h, listen, pageURL, replace,
  setStatusLine, statusBadge,
} from "./dom.js";
import { Terminal } from "./ansi.js";
import { Chart, chartControls, metricCSV } from "./plot.js";

// flat lists the leaves of a nested value as [path, value] rows.
export function flat(v, prefix, out) {
  out = out || [];
  if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length) {
    for (const k of Object.keys(v).sort()) flat(v[k], prefix ? prefix + "." + k : k, out);
  } else if (prefix) {
    out.push([prefix, v]);
  }
  return out;
}

export function kvTable(rows, cls) {
  if (!rows.length) return h("p", { class: "muted" }, "none");
  return h("table", { class: "kv " + (cls || "") }, h("tbody", null, rows.map(([k, v]) =>
    h("tr", null, h("th", { scope: "row" }, k), h("td", null, v instanceof Node ? v : fmtValue(v))))));
}

function section(title, id, ...body) {
  return h("section", { class: "card", id }, h("h2", null, title), ...body);
}

export async function showRun(ctx, store, id) {
  const { main, stores } = ctx;
  const several = stores.stores.length > 1;
  const ref = { store, id };
  const run = await getJSON("api/run", ref);
  document.title = `${run.name} #${run.id} · sacred ui`;
  ctx.crumbs(h("a", { href: pageURL(""), "data-nav": true }, "runs"), h("span", null, `${run.name} #${run.id}`));

  let closed = false;
  let live = null;
  const charts = new Map(); // metric name → Chart
  const counts = {};

  // Facts.
  const badge = h("span", { id: "run-status" }, statusBadge(run.status));
  const facts = h("dl", { class: "facts" });
  function renderFacts(r) {
    const repo = (r.experiment && r.experiment.repositories) || [];
    const items = [
      ["started", fmtTime(r.start_time)],
      ["stopped", fmtTime(r.stop_time)],
      ["heartbeat", fmtTime(r.heartbeat)],
      ["duration", fmtDuration(r.duration)],
      ["result", r.has_result ? fmtValue(r.result) : ""],
      ["host", r.host ? r.host.hostname : ""],
      ["commit", repo.length ? repo.map((g) => g.commit.slice(0, 12) + (g.dirty ? " (dirty)" : "")).join(", ") : ""],
    ];
    replace(facts, items.filter(([, v]) => v !== "").map(([k, v]) => [h("dt", null, k), h("dd", { class: "fact-" + k }, v)]));
  }
  renderFacts(run);

  const head = h("section", { class: "run-head" },
    h("h1", null, h("span", { class: "run-name" }, run.name), " ", h("span", { class: "muted" }, "#" + run.id), " ", badge,
      several ? h("span", { class: "muted store" }, " in " + run.store_label) : null),
    h("p", { class: "command" }, h("code", null, run.command)),
    facts,
    h("p", { class: "actions" },
      downloadLink("All files (zip)", "api/files.zip", ref),
      " ",
      h("a", { class: "button", href: pageURL("") + "?where=" + encodeURIComponent(`name == ${JSON.stringify(run.name)}`), "data-nav": true }, "Runs of this experiment")));

  // Notes and tags.
  let notesCard = null;
  if (run.annotate || run.notes || (run.tags && run.tags.length)) {
    notesCard = notesSection(ref, run);
  }

  // Metrics.
  const chartsBox = h("div", { class: "charts" });
  const metricsCard = section("Metrics", "metrics",
    chartControls((o) => { for (const c of charts.values()) c.set(o); }), chartsBox);
  function addChart(m) {
    const holder = h("div", { class: "chart", "data-metric": m.name });
    const title = h("h3", null, m.name, " ",
      h("a", { href: metricCSV(store, id, m.name), download: "", class: "small" }, "CSV"), " ",
      h("a", { href: apiURL("api/metric.json", { store, id, name: m.name }).href, download: "", class: "small" }, "JSON"));
    chartsBox.appendChild(h("div", { class: "chart-card" }, title, holder));
    const c = new Chart(holder, [{ store, id, name: m.name, label: m.name }], {});
    charts.set(m.name, c);
    counts[m.name] = m.count;
    c.load(null).catch((e) => { holder.textContent = e.message; });
  }

  // Output.
  const termEl = h("pre", { class: "terminal", id: "output", tabindex: "0" });
  const term = new Terminal(termEl);
  const outInfo = h("span", { class: "muted" });
  const earlier = h("button", { type: "button", hidden: true }, "Show all");
  let outTo = 0;
  const outputCard = section("Output", "output-card",
    h("div", { class: "toolbar" }, outInfo, earlier, downloadLink("Download", "api/output.txt", ref)), termEl);
  async function loadOutput(from) {
    let next = from;
    for (;;) {
      const o = await getJSON("api/output", { ...ref, from: next === null ? "" : next });
      if (next === null && o.from > 0) {
        earlier.hidden = false;
        outInfo.textContent = `last ${(o.size - o.from).toLocaleString()} of ${o.size.toLocaleString()} bytes `;
      }
      term.write(o.text);
      outTo = o.to;
      if (o.to >= o.size || o.to === o.from) break;
      next = o.to;
    }
    termEl.scrollTop = termEl.scrollHeight;
  }
  listen(earlier, "click", async () => {
    earlier.hidden = true;
    outInfo.textContent = "";
    clear(termEl);
    Object.assign(term, new Terminal(termEl));
    await loadOutput(0);
  });

  // Failure.
  const traceBox = h("div");
  function renderTrace(trace) {
    replace(traceBox, trace && trace.length ? section("Fail trace", "fail-trace", h("pre", { class: "trace" }, trace.join(""))) : null);
  }
  renderTrace(run.fail_trace);

  // Config, info.
  const configCard = section("Config", "config", kvTable(flat(run.config, "")));
  const infoBox = h("div");
  const infoCard = section("Info", "info", infoBox);
  function renderInfo(info) {
    replace(infoBox, kvTable(flat(info, "")));
  }
  renderInfo(run.info);

  // Artifacts.
  const artBox = h("div");
  const artCard = section("Artifacts", "artifacts", artBox);
  function renderArtifacts(list) {
    replace(artBox, list.length ? h("ul", { class: "artifacts" }, list.map((a) => artifactItem(ref, a))) : h("p", { class: "muted" }, "none"));
  }
  renderArtifacts(run.artifacts);

  // Experiment, host, meta, resources.
  const ex = run.experiment || {};
  const expCard = section("Experiment", "experiment",
    kvTable([["name", ex.name], ["base_dir", ex.base_dir], ["mainfile", ex.mainfile]]),
    h("h3", null, "Repositories"),
    kvTable((ex.repositories || []).map((g) => [g.url || "(no remote)", g.commit + (g.dirty ? " (dirty)" : "")])),
    h("h3", null, "Sources"),
    h("ul", { class: "plain sources" }, (run.sources || []).map((s) => sourceItem(ref, s))),
    h("h3", null, "Dependencies"),
    h("ul", { class: "plain deps" }, (ex.dependencies || []).map((d) => h("li", null, d))));
  const host = run.host || {};
  const hostRows = flat({ ...host, ENV: undefined }, "").filter(([, v]) => v !== undefined);
  const hostCard = section("Host", "host", kvTable(hostRows), host.ENV && Object.keys(host.ENV).length ? [h("h3", null, "Environment"), kvTable(flat(host.ENV, ""))] : null);
  const metaCard = section("Meta", "meta", kvTable(flat(run.meta, "")));
  const resCard = (run.resources || []).length ? section("Resources", "resources",
    kvTable(run.resources.map((r) => [r.path, h("span", null, r.md5, " ",
      downloadLink("Download", "api/resource", { ...ref, path: r.path, download: "1" }))]))) : null;

  replace(main, head, notesCard, traceBox,
    run.metrics.length ? metricsCard : null,
    outputCard, configCard, infoCard, artCard, expCard, hostCard, metaCard, resCard);

  for (const m of run.metrics) addChart(m);
  await loadOutput(null);
  if (run.output_size === 0) outInfo.textContent = "no output yet ";

  // Live: new output, points and state while the run runs.
  function follow() {
    const es = new EventSource(apiURL("api/live", { ...ref, out: outTo, counts: JSON.stringify(counts) }));
    live = es;
    const stick = () => termEl.scrollTop + termEl.clientHeight >= termEl.scrollHeight - 4;
    listen(es, "output", (ev) => {
      const d = JSON.parse(ev.data);
      if (d.from !== outTo) return; // not where the page is: wait for the next
      const atEnd = stick();
      term.write(d.text);
      outTo = d.to;
      if (atEnd) termEl.scrollTop = termEl.scrollHeight;
    });
    listen(es, "metric", (ev) => {
      const d = JSON.parse(ev.data);
      const c = charts.get(d.name);
      if (!c) {
        if (!metricsCard.isConnected) main.insertBefore(metricsCard, outputCard);
        addChart({ name: d.name, count: d.count });
        return;
      }
      counts[d.name] = d.count;
      if (d.reset) c.load(c.range);
      else c.append(0, d.points);
    });
    listen(es, "run", (ev) => {
      const d = JSON.parse(ev.data);
      replace(badge, statusBadge(d.status));
      renderFacts({ ...run, ...d });
      renderInfo(d.info);
      renderTrace(d.fail_trace);
      if (d.artifacts && d.artifacts.length !== run.artifacts.length) {
        run.artifacts = d.artifacts.map((name) => ({ name, preview: previewKind(name) }));
        renderArtifacts(run.artifacts);
      }
    });
    listen(es, "end", () => { es.close(); setStatusLine("run finished"); });
    listen(es, "failure", (ev) => { setStatusLine(JSON.parse(ev.data).error, true); });
    listen(es, "error", () => {
      if (es.readyState === EventSource.CLOSED) return;
      setStatusLine("live updates interrupted; retrying…", true);
      // Reconnect from where the page is, not from where it started.
      es.close();
      if (!closed) setTimeout(() => { if (!closed) follow(); }, 2000);
    });
    listen(es, "open", () => setStatusLine("live"));
  }
  if (!run.finished) follow();

  return {
    close() {
      closed = true;
      if (live) live.close();
      for (const c of charts.values()) c.destroy();
    },
  };
}

function previewKind(name) {
  const ext = (name.match(/\.[^./]+$/) || [""])[0].toLowerCase();
  if ([".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".bmp", ".ico"].includes(ext)) return "image";
  if ([".html", ".htm"].includes(ext)) return "html";
  if ([".txt", ".log", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".md", ".rst",
    ".py", ".sh", ".diff", ".patch", ".xml", ".out", ".err", ".tex", ".r", ".go", ".js"].includes(ext)) return "text";
  return "";
}

// sourceItem lists one source file, viewable as text where the store
// kept its content.
function sourceItem(ref, s) {
  const box = h("div", { class: "preview" });
  const item = h("li", null, h("code", null, s.name), " ", h("span", { class: "muted" }, s.md5 + (s.omitted ? ` (not stored: ${s.size} bytes)` : "")));
  if (!s.omitted) {
    const btn = h("button", { type: "button", class: "small" }, "View");
    listen(btn, "click", async () => {
      if (box.firstChild) { clear(box); return; }
      const res = await fetch(apiURL("api/source", { ...ref, name: s.name }));
      const text = await res.text();
      box.appendChild(h("pre", { class: "text-preview" + (res.ok ? "" : " error") }, res.ok ? text : (JSON.parse(text).error || text)));
    });
    item.append(" ", btn);
  }
  item.appendChild(box);
  return item;
}

// artifactItem lists one artifact with a download link and a preview that
// opens on demand: an image, text (the first 256 KiB), or HTML in a
// sandboxed frame (no scripts, no access to this page).
function artifactItem(ref, a) {
  const params = { ...ref, name: a.name };
  const box = h("div", { class: "preview" });
  const item = h("li", null, h("code", null, a.name), " ", downloadLink("Download", "api/artifact", { ...params, download: "1" }));
  if (a.preview) {
    const btn = h("button", { type: "button", class: "small" }, "Preview");
    listen(btn, "click", async () => {
      if (box.firstChild) { clear(box); return; }
      if (a.preview === "image") {
        box.appendChild(h("img", { src: apiURL("api/artifact", params).href, alt: a.name }));
      } else if (a.preview === "html") {
        box.appendChild(h("iframe", { sandbox: "", src: apiURL("api/artifact", { ...params, view: "html" }).href, title: a.name }));
      } else {
        const res = await fetch(apiURL("api/artifact", { ...params, head: 262144 }));
        const text = await res.text();
        box.appendChild(h("pre", { class: "text-preview" }, text));
      }
    });
    item.appendChild(document.createTextNode(" "));
    item.appendChild(btn);
  }
  item.appendChild(box);
  return item;
}

// notesSection shows a run's notes and tags, editable unless read-only or
// the store keeps none.
function notesSection(ref, run) {
  const tags = h("input", { type: "text", value: (run.tags || []).join(", "), "aria-label": "tags", disabled: !run.annotate, placeholder: "tags, comma separated" });
  const notes = h("textarea", { rows: "3", "aria-label": "notes", disabled: !run.annotate }, "");
  notes.value = run.notes || "";
  const save = h("button", { type: "button", hidden: !run.annotate }, "Save");
  const msg = h("span", { class: "muted" });
  listen(save, "click", async () => {
    msg.textContent = "saving…";
    try {
      const res = await getJSON("api/annotate", ref, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ notes: notes.value, tags: tags.value.split(",").map((s) => s.trim()).filter(Boolean) }),
      });
      tags.value = res.tags.join(", ");
      msg.textContent = "saved";
    } catch (e) {
      msg.textContent = e.message;
    }
  });
  return section("Notes", "notes", h("label", null, "Tags ", tags), h("label", null, "Notes ", notes), save, msg,
    run.annotations_error ? h("p", { class: "error" }, run.annotations_error) : null);
}
