// After logging in, come back to the page that asked for it.
const base = new URL(document.baseURI).pathname;
const here = location.pathname.startsWith(base) ? location.pathname.slice(base.length) : "";
document.getElementById("next").value = "/" + here + location.search;
