// Building the page. Run data (names, output, config values, metric names,
// artifact names) is text written by whoever ran the experiment: it only
// ever reaches the page as text nodes and attribute values, never as
// markup. Nothing in these modules assigns innerHTML or outerHTML.

// h makes an element: h("a", {href: "...", class: "x"}, "text", child).
// Props named on* are refused: handlers are added with listen().
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) throw new Error("h: use listen() for " + k);
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k === "value") el.value = v;
      else if (k === "checked") el.checked = !!v;
      else if (k === "dataset") Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// clear removes an element's children.
export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// replace puts children in place of an element's children.
export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

export function listen(el, type, fn, opts) {
  el.addEventListener(type, fn, opts);
  return el;
}

// apiURL is an address of the server's API, relative to the UI's base.
export function apiURL(path, params) {
  const u = new URL(path, document.baseURI);
  if (params) {
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, v);
    }
  }
  return u;
}

// pageURL is the address of a page of the UI: "", "run/ID" or "compare".
export function pageURL(path, params) {
  return apiURL(path, params).href;
}

// getJSON fetches an API answer; a failure throws an Error whose message
// is the server's one line.
export async function getJSON(path, params, opts) {
  const res = await fetch(apiURL(path, params), opts);
  let body = null;
  try {
    body = await res.json();
  } catch (e) {
    if (res.ok) throw new Error("the server's answer is not JSON");
  }
  if (!res.ok) {
    if (res.status === 401) location.reload();
    throw new Error((body && body.error) || res.status + " " + res.statusText);
  }
  return body;
}

// runLink is the address of a run's page.
export function runLink(store, id, several) {
  return pageURL("run/" + encodeURIComponent(id), several ? { store } : null);
}

// Formatting of values for display.

export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function fmtDuration(sec) {
  if (sec === null || sec === undefined || typeof sec !== "number") return "";
  if (sec < 1) return sec.toFixed(2) + " s";
  if (sec < 60) return sec.toFixed(1) + " s";
  const s = Math.round(sec);
  const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  if (d > 0) return `${d}d ${hh}h ${mm}m`;
  if (hh > 0) return `${hh}h ${mm}m ${ss}s`;
  return `${mm}m ${ss}s`;
}

export function fmtValue(v) {
  if (v === undefined) return "";
  if (v === null) return "null";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-4 || a >= 1e6) ? v.toExponential(4) : String(+v.toPrecision(6));
  }
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

// statusBadge shows a run's status; DIED? is a RUNNING run whose
// heartbeat is old.
export function statusBadge(status) {
  const cls = "badge status-" + String(status).toLowerCase().replace(/[^a-z]/g, "");
  return h("span", { class: cls, title: status === "DIED?" ? "RUNNING, but no heartbeat for a while: probably dead" : null }, status);
}

// setStatusLine shows one line in the header (errors, live state).
export function setStatusLine(text, isError) {
  const el = document.getElementById("status-line");
  el.textContent = text || "";
  el.className = isError ? "error" : "";
}

// download makes an element that downloads an API answer.
export function downloadLink(label, path, params) {
  return h("a", { href: apiURL(path, params).href, download: "", class: "button" }, label);
}
