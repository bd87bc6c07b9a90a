// The front end's entry: reads the address, shows the page it names, and
// follows links inside the UI without reloading.
import { getJSON, h, listen, replace, setStatusLine } from "./dom.js";
import { showTable } from "./table.js";
import { showRun } from "./run.js";
import { showCompare } from "./compare.js";

const main = document.getElementById("main");
const base = new URL(document.baseURI).pathname;
let current = null; // the page shown: { close() }
let stores = null;

// route shows the page of the current address.
async function route() {
  if (current && current.close) current.close();
  current = null;
  setStatusLine("");
  const path = location.pathname.startsWith(base) ? location.pathname.slice(base.length) : "";
  const params = new URLSearchParams(location.search);
  try {
    if (!stores) stores = await getJSON("api/stores");
    const ctx = { main, stores, params, navigate, crumbs: setCrumbs };
    if (path === "" || path === "/") {
      current = await showTable(ctx);
    } else if (path.startsWith("run/")) {
      const id = decodeURIComponent(path.slice(4));
      current = await showRun(ctx, Number(params.get("store") || 0), id);
    } else if (path === "compare") {
      current = await showCompare(ctx);
    } else {
      replace(main, h("p", { class: "error" }, "No such page: " + path));
    }
  } catch (e) {
    replace(main, h("p", { class: "error" }, String(e.message || e)));
  }
}

// navigate goes to an address of the UI; replace keeps the history entry
// (for a changed filter, not a new page).
export function navigate(href, replaceEntry) {
  const u = new URL(href, document.baseURI);
  if (u.origin !== location.origin) {
    location.href = href;
    return;
  }
  if (replaceEntry) history.replaceState(null, "", u);
  else history.pushState(null, "", u);
  route();
}

function setCrumbs(...items) {
  replace(document.getElementById("crumbs"), items.map((x, i) => [i > 0 ? " / " : "", x]));
}

// Links marked data-nav stay in the page.
listen(document, "click", (ev) => {
  const a = ev.target.closest("a[data-nav]");
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  ev.preventDefault();
  navigate(a.href);
});
listen(window, "popstate", route);

// "/" focuses the page's filter, wherever the focus is not a text field.
listen(document, "keydown", (ev) => {
  const t = ev.target;
  const typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  if (typing || ev.metaKey || ev.ctrlKey || ev.altKey) return;
  if (current && current.key && current.key(ev)) ev.preventDefault();
});

route();
