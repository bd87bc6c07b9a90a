// A small terminal for captured output: ANSI colours (SGR: 16, 256 and
// true colours, bold, dim, italic, underline), \r that returns to the
// start of the line and \b that steps back, as a terminal shows progress
// bars. Other escape sequences are dropped. Text is only ever set as text.
import { h } from "./dom.js";

const PLAIN = Object.freeze({ key: "" });

function styleKey(st) {
  return [st.fg, st.bg, st.bold, st.dim, st.italic, st.underline].join("|");
}

function withStyle(st, change) {
  const next = { ...st, ...change };
  next.key = styleKey(next);
  return Object.freeze(next);
}

// xterm's 256-colour palette beyond the first 16.
function color256(n) {
  if (n < 16) return null;
  if (n >= 232) {
    const v = 8 + (n - 232) * 10;
    return `rgb(${v},${v},${v})`;
  }
  n -= 16;
  const c = (x) => (x === 0 ? 0 : 55 + x * 40);
  return `rgb(${c(Math.floor(n / 36))},${c(Math.floor(n / 6) % 6)},${c(n % 6)})`;
}

function sgr(st, params) {
  const ps = params === "" ? [0] : params.split(/[;:]/).map((x) => Number(x) || 0);
  for (let i = 0; i < ps.length; i++) {
    const p = ps[i];
    if (p === 0) st = PLAIN;
    else if (p === 1) st = withStyle(st, { bold: true });
    else if (p === 2) st = withStyle(st, { dim: true });
    else if (p === 3) st = withStyle(st, { italic: true });
    else if (p === 4) st = withStyle(st, { underline: true });
    else if (p === 22) st = withStyle(st, { bold: false, dim: false });
    else if (p === 23) st = withStyle(st, { italic: false });
    else if (p === 24) st = withStyle(st, { underline: false });
    else if (p >= 30 && p <= 37) st = withStyle(st, { fg: p - 30 });
    else if (p >= 90 && p <= 97) st = withStyle(st, { fg: p - 90 + 8 });
    else if (p >= 40 && p <= 47) st = withStyle(st, { bg: p - 40 });
    else if (p >= 100 && p <= 107) st = withStyle(st, { bg: p - 100 + 8 });
    else if (p === 39) st = withStyle(st, { fg: undefined });
    else if (p === 49) st = withStyle(st, { bg: undefined });
    else if (p === 38 || p === 48) {
      const which = p === 38 ? "fg" : "bg";
      if (ps[i + 1] === 5) {
        const n = ps[i + 2] & 255;
        st = withStyle(st, { [which]: n < 16 ? n : color256(n) });
        i += 2;
      } else if (ps[i + 1] === 2) {
        const [r, g, b] = [ps[i + 2] & 255, ps[i + 3] & 255, ps[i + 4] & 255];
        st = withStyle(st, { [which]: `rgb(${r},${g},${b})` });
        i += 4;
      }
    }
  }
  return st;
}

function span(text, st) {
  if (!st.key) return document.createTextNode(text);
  const cls = [];
  if (typeof st.fg === "number") cls.push("fg" + st.fg);
  if (typeof st.bg === "number") cls.push("bg" + st.bg);
  if (st.bold) cls.push("b");
  if (st.dim) cls.push("dim");
  if (st.italic) cls.push("i");
  if (st.underline) cls.push("u");
  const el = h("span", { class: cls.join(" ") || null }, text);
  // Colours beyond the 16 named ones go through the CSS object model,
  // which the page's policy allows (no style attribute in markup).
  if (typeof st.fg === "string") el.style.color = st.fg;
  if (typeof st.bg === "string") el.style.backgroundColor = st.bg;
  return el;
}

export class Terminal {
  constructor(el, maxLines) {
    this.el = el;
    this.maxLines = maxLines || 20000;
    this.dropped = 0;
    this.style = PLAIN;
    this.pending = ""; // an escape sequence cut by the end of a chunk
    this.cells = []; // the current line: [{ch, st}]
    this.col = 0;
    this.lineEl = null;
    this.count = 0;
  }

  // write adds output text.
  write(text) {
    text = this.pending + text;
    this.pending = "";
    let i = 0;
    let dirty = false;
    while (i < text.length) {
      const c = text[i];
      if (c === "\n") {
        this.flushLine(true);
        i++;
        dirty = false;
        continue;
      }
      if (c === "\r") { this.col = 0; i++; continue; }
      if (c === "\b") { this.col = Math.max(0, this.col - 1); i++; continue; }
      if (c === "\x1b") {
        if (i + 1 >= text.length) { this.pending = text.slice(i); break; }
        if (text[i + 1] === "[") {
          let j = i + 2;
          while (j < text.length && !(text.charCodeAt(j) >= 0x40 && text.charCodeAt(j) <= 0x7e)) j++;
          if (j >= text.length) {
            if (text.length - i < 64) this.pending = text.slice(i);
            break;
          }
          if (text[j] === "m") this.style = sgr(this.style, text.slice(i + 2, j));
          i = j + 1;
        } else if (text[i + 1] === "]") {
          // OSC (a window title, a link): up to BEL or ESC \.
          const bel = text.indexOf("\x07", i);
          const st = text.indexOf("\x1b\\", i);
          const end = bel < 0 ? st : st < 0 ? bel : Math.min(bel, st);
          if (end < 0) { if (text.length - i < 512) this.pending = text.slice(i); break; }
          i = end + (text[end] === "\x07" ? 1 : 2);
        } else {
          i += 2;
        }
        continue;
      }
      // Printable run up to the next control character.
      let j = i;
      while (j < text.length && !"\n\r\b\x1b".includes(text[j])) j++;
      const chunk = text.slice(i, j);
      for (const ch of chunk) {
        if (ch < " " && ch !== "\t") continue;
        const cell = { ch, st: this.style };
        if (this.col < this.cells.length) this.cells[this.col] = cell;
        else this.cells.push(cell);
        this.col++;
      }
      dirty = true;
      i = j;
    }
    if (dirty || this.cells.length) this.flushLine(false);
  }

  // flushLine renders the current line; done ends it.
  flushLine(done) {
    if (!this.lineEl) {
      this.lineEl = h("div", { class: "ln" });
      this.el.appendChild(this.lineEl);
      this.count++;
    }
    const el = this.lineEl;
    while (el.firstChild) el.removeChild(el.firstChild);
    let text = "";
    let st = null;
    for (const c of this.cells) {
      if (st && c.st.key !== st.key) {
        el.appendChild(span(text, st));
        text = "";
      }
      st = c.st;
      text += c.ch;
    }
    if (text) el.appendChild(span(text, st));
    if (!el.firstChild) el.appendChild(document.createTextNode("\u200b"));
    if (done) {
      this.lineEl = null;
      this.cells = [];
      this.col = 0;
      this.trim();
    }
  }

  trim() {
    while (this.count > this.maxLines) {
      const first = this.el.querySelector(".ln");
      if (!first) break;
      first.remove();
      this.count--;
      this.dropped++;
    }
  }

  // text is what the terminal shows, as plain text (for tests and copy).
  text() {
    return [...this.el.querySelectorAll(".ln")].map((l) => l.textContent.replace(/\u200b/g, "")).join("\n");
  }
}
