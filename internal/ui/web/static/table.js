// The runs table: paging, sort and filter are done by the server (the
// query language of `sacred ls`); the page holds only the rows it shows.
// Its state lives in the address, so a view can be shared.
import {
  apiURL, downloadLink, fmtDuration, fmtTime, fmtValue, getJSON, h, listen, pageURL, replace,
  runLink, setStatusLine, statusBadge,
} from "./dom.js";

const STATUSES = ["", "RUNNING", "COMPLETED", "FAILED", "INTERRUPTED", "TIMEOUT", "QUEUED", "DIED?"];
const FIXED = [
  ["id", "id"], ["name", "name"], ["status", "status"], ["start_time", "started"],
  ["duration", "duration"], ["result", "result"],
];

export async function showTable(ctx) {
  const { main, stores, params, navigate } = ctx;
  const several = stores.stores.length > 1;
  ctx.crumbs(h("span", null, "runs"));
  document.title = "runs · sacred ui";
  const state = {
    q: params.get("q") || "",
    where: params.get("where") || "",
    name: params.get("name") || "",
    status: params.get("status") || "",
    sort: params.get("sort") || "",
    cols: params.get("cols") || "",
    offset: Number(params.get("offset") || 0),
    limit: Number(params.get("limit") || 50),
  };
  const checked = new Set(); // "store:id" of runs picked for compare
  let rows = [];
  let cursor = -1;
  let versions = [];
  let live = null;
  let closed = false;

  const quick = h("input", { type: "search", id: "quick", placeholder: "filter: id, name, command (regex)   /", value: state.q, "aria-label": "quick filter" });
  const where = h("input", { type: "text", id: "where", placeholder: "where: config.lr > 0.01 && status == \"COMPLETED\"", value: state.where, "aria-label": "where", spellcheck: "false" });
  const status = h("select", { id: "status", "aria-label": "status" }, STATUSES.map((s) => h("option", { value: s }, s || "any status")));
  status.value = state.status;
  const cols = h("input", { type: "text", id: "cols", list: "fields", placeholder: "columns: config.lr, metrics.loss.last", value: state.cols, "aria-label": "columns", spellcheck: "false" });
  const fields = h("datalist", { id: "fields" });
  const compareBtn = h("button", { type: "button", id: "compare", disabled: true }, "Compare");
  const reloadBtn = h("button", { type: "button", title: "read every run of the stores again" }, "Reload");
  const exports = h("span", { class: "exports" });
  const err = h("p", { class: "error", role: "alert" });
  const thead = h("thead");
  const tbody = h("tbody");
  const table = h("table", { class: "runs", id: "runs" }, thead, tbody);
  const pager = h("div", { class: "pager" });

  replace(main,
    h("form", { class: "toolbar", id: "filters" },
      quick, where, status, cols, fields,
      h("button", { type: "submit" }, "Apply"), compareBtn, reloadBtn, exports),
    err, h("div", { class: "table-wrap" }, table), pager);

  function query(extra) {
    return {
      q: state.q, where: state.where, name: state.name, status: state.status,
      sort: state.sort, cols: state.cols, ...extra,
    };
  }

  // sync puts the state into the address without a new history entry.
  function sync() {
    const p = {};
    for (const [k, v] of Object.entries(state)) {
      if (v && !(k === "limit" && v === 50) && !(k === "offset" && v === 0)) p[k] = v;
    }
    history.replaceState(null, "", pageURL("", p));
  }

  let inflight = null;
  let partialShown = false;
  async function load(opts) {
    const ctrl = new AbortController();
    if (inflight) inflight.abort();
    inflight = ctrl;
    try {
      const res = await getJSON("api/runs", query({ offset: state.offset, limit: state.limit, reload: opts && opts.reload ? "1" : "" }), { signal: ctrl.signal });
      if (closed) return;
      err.textContent = res.unknown && res.unknown.length ? "unknown fields (they match nothing): " + res.unknown.join(", ") : "";
      err.className = "warning";
      versions = res.versions;
      render(res);
      // A first page served while the stores are still being read: the
      // live changes reload it when the reading ends.
      if (res.partial) setStatusLine("reading every run of the store: the newest are shown, the table updates when it is done");
      else if (partialShown) setStatusLine("");
      partialShown = !!res.partial;
      if (!live) follow();
    } catch (e) {
      if (e.name === "AbortError") return;
      err.className = "error";
      err.textContent = e.message;
    }
  }

  function sortKey(key) {
    const s = state.sort;
    if (s === key) return "-" + key;
    if (s === "-" + key) return "";
    return key;
  }

  function header(key, label) {
    const mark = state.sort === key ? " ▲" : state.sort === "-" + key ? " ▼" : "";
    const a = h("a", { href: "#", class: "sort", "data-key": key }, label + mark);
    listen(a, "click", (ev) => {
      ev.preventDefault();
      state.sort = sortKey(key);
      state.offset = 0;
      sync();
      load();
    });
    return h("th", { scope: "col", "aria-sort": mark ? (mark.includes("▲") ? "ascending" : "descending") : null }, a);
  }

  function render(res) {
    rows = res.rows;
    const extra = res.cols || [];
    replace(thead, h("tr", null,
      h("th", { class: "pick" }, ""),
      several ? h("th", null, "store") : null,
      FIXED.map(([k, l]) => header(k, l)),
      extra.map((c) => header(c, c))));
    replace(tbody, rows.map((r, i) => {
      const key = r.store + ":" + r.id;
      const box = h("input", { type: "checkbox", "aria-label": "pick run " + r.id, checked: checked.has(key) });
      listen(box, "change", () => {
        if (box.checked) checked.add(key); else checked.delete(key);
        compareBtn.disabled = checked.size < 2;
      });
      const tr = h("tr", { "data-index": i, class: i === cursor ? "cursor" : null },
        h("td", { class: "pick" }, box),
        several ? h("td", null, stores.stores[r.store].label) : null,
        h("td", { class: "id" }, h("a", { href: runLink(r.store, r.id, several), "data-nav": true }, r.id)),
        h("td", { class: "name" }, r.name),
        h("td", null, statusBadge(r.status)),
        h("td", { class: "time" }, fmtTime(r.start_time)),
        h("td", { class: "num" }, fmtDuration(r.duration)),
        h("td", { class: "num" }, r.has_result ? fmtValue(r.result) : ""),
        r.cols.map((v) => h("td", { class: typeof v === "number" ? "num" : null }, fmtValue(v === null ? undefined : v))));
      return tr;
    }));
    if (!rows.length) tbody.appendChild(h("tr", null, h("td", { colspan: 8 + extra.length, class: "muted" }, res.total ? "" : "No runs match.")));
    const first = res.total ? state.offset + 1 : 0;
    const last = state.offset + rows.length;
    const prev = h("button", { type: "button", disabled: state.offset === 0 }, "← Newer");
    const next = h("button", { type: "button", disabled: last >= res.total }, "Older →");
    listen(prev, "click", () => { state.offset = Math.max(0, state.offset - state.limit); sync(); load(); });
    listen(next, "click", () => { state.offset += state.limit; sync(); load(); });
    replace(pager, prev, h("span", { id: "count" }, `${first}–${last} of ${res.total}`), next);
    replace(exports,
      downloadLink("CSV", "api/runs.csv", query()),
      downloadLink("JSON", "api/runs.json", query()));
    compareBtn.disabled = checked.size < 2;
  }

  // follow listens for changed runs and reloads the page shown (never
  // the whole list), at most once a second.
  function follow() {
    const es = new EventSource(apiURL("api/live/runs", { v: versions.join(",") }));
    live = es;
    let timer = null;
    listen(es, "changed", () => {
      if (timer) return;
      timer = setTimeout(() => { timer = null; load(); }, 1000);
    });
    listen(es, "error", () => setStatusLine("live updates interrupted; retrying…", true));
    listen(es, "open", () => setStatusLine(""));
  }

  listen(main.querySelector("#filters"), "submit", (ev) => {
    ev.preventDefault();
    state.where = where.value.trim();
    state.cols = cols.value.split(",").map((s) => s.trim()).filter(Boolean).join(",");
    state.offset = 0;
    sync();
    load();
  });
  listen(status, "change", () => { state.status = status.value; state.offset = 0; sync(); load(); });
  let typing = null;
  listen(quick, "input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { state.q = quick.value; state.offset = 0; sync(); load(); }, 200);
  });
  listen(compareBtn, "click", () => {
    const ids = [...checked].map((k) => {
      const i = k.indexOf(":");
      const id = encodeURIComponent(k.slice(i + 1));
      return several ? k.slice(0, i) + ":" + id : id;
    });
    navigate(pageURL("compare") + "?ids=" + ids.join(","));
  });
  listen(reloadBtn, "click", () => load({ reload: true }));

  getJSON("api/fields").then((res) => {
    replace(fields, res.fields.map((f) => h("option", { value: f })));
  }).catch(() => {});

  await load();

  function moveCursor(d) {
    if (!rows.length) return;
    cursor = Math.max(0, Math.min(rows.length - 1, cursor + d));
    for (const tr of tbody.querySelectorAll("tr")) tr.classList.toggle("cursor", Number(tr.dataset.index) === cursor);
    const tr = tbody.querySelector(`tr[data-index="${cursor}"]`);
    if (tr) tr.scrollIntoView({ block: "nearest" });
  }

  return {
    close() {
      closed = true;
      if (live) live.close();
    },
    key(ev) {
      switch (ev.key) {
        case "/": quick.focus(); return true;
        case "j": moveCursor(1); return true;
        case "k": moveCursor(-1); return true;
        case "x": {
          const tr = tbody.querySelector(`tr[data-index="${cursor}"] input[type=checkbox]`);
          if (tr) tr.click();
          return true;
        }
        case "Enter": {
          if (cursor < 0 || !rows[cursor]) return false;
          const r = rows[cursor];
          navigate(runLink(r.store, r.id, several));
          return true;
        }
      }
      return false;
    },
  };
}
