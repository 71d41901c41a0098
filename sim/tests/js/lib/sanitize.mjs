// Sanitizing, shared by the backends of this folder (chat-server.mjs, cluster-server.mjs).
//
// Every tag, comment and doctype removed, <script>/<style> with their content; the text
// kept, its character references decoded, then escaped as an HTML serializer escapes text
// (&, <, >, U+00A0), so the result never contains < or >. A small HTML tokenizer, following
// the WHATWG states closely enough that what a browser would treat as a tag is removed.

export const MAX_NAME_CHARS = 100;

const DROP_CONTENT = new Set(["script", "style"]);
const RAWTEXT = new Set(["xmp", "iframe", "noembed", "noframes", "noscript"]);
const RCDATA = new Set(["textarea", "title"]);
const NAMED = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0" };
const LEGACY = new Set(["amp", "lt", "gt", "quot", "nbsp"]); // decoded without `;` too

const isSpace = (c) => c === " " || c === "\t" || c === "\n" || c === "\f" || c === "\r";
const isAlpha = (c) => (c >= "a" && c <= "z") || (c >= "A" && c <= "Z");

function decodeEntities(text) {
  if (!text.includes("&")) return text;
  return text.replace(/&(?:#([0-9]+);?|#[xX]([0-9a-fA-F]+);?|([a-zA-Z][a-zA-Z0-9]*)(;?))/g, (whole, dec, hex, name, semi) => {
    if (name !== undefined) {
      if (Object.hasOwn(NAMED, name) && (semi === ";" || LEGACY.has(name))) return NAMED[name];
      for (const legacy of LEGACY) {
        if (name.startsWith(legacy)) return NAMED[legacy] + whole.slice(1 + legacy.length);
      }
      return whole;
    }
    const code = dec !== undefined ? Number.parseInt(dec, 10) : Number.parseInt(hex, 16);
    if (!Number.isFinite(code) || code === 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
      return "\ufffd";
    }
    return String.fromCodePoint(code);
  });
}

function escapeText(text) {
  return text.replace(/[&<>\u00a0]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\u00a0": "&nbsp;" })[c]);
}

// Index just past the `>` closing a start or end tag whose name ends at `i`, or -1 at EOF
// (a tag cut by the end of input is dropped with everything after it, as browsers do).
function skipTagRest(s, i) {
  const n = s.length;
  while (i < n) {
    const c = s[i];
    if (c === ">") return i + 1;
    if (c === "=") {
      i += 1;
      while (i < n && isSpace(s[i])) i += 1;
      if (s[i] === '"' || s[i] === "'") {
        const end = s.indexOf(s[i], i + 1);
        if (end < 0) return -1;
        i = end + 1;
        continue;
      }
      while (i < n && !isSpace(s[i]) && s[i] !== ">") i += 1; // unquoted value
      continue;
    }
    i += 1;
  }
  return -1;
}

// Index of `</name` followed by space, `/` or `>` at or after `from` (ASCII case-insensitive).
function findEndTag(s, lower, name, from) {
  let i = from;
  for (;;) {
    i = lower.indexOf(`</${name}`, i);
    if (i < 0) return -1;
    const after = s[i + 2 + name.length];
    if (after === undefined || isSpace(after) || after === "/" || after === ">") return i;
    i += 2;
  }
}

export function stripMarkup(input) {
  if (!/[<>&\0\r\u00a0]/.test(input)) return input; // plain text comes back unchanged
  const s = input.replace(/\r\n?/g, "\n").replace(/\0/g, "");
  const lower = s.toLowerCase();
  const n = s.length;
  let out = "";
  let text = ""; // pending text, decoded then escaped when markup interrupts it
  const flush = () => {
    out += escapeText(decodeEntities(text));
    text = "";
  };
  let i = 0;
  while (i < n) {
    const lt = s.indexOf("<", i);
    if (lt < 0) {
      text += s.slice(i);
      break;
    }
    text += s.slice(i, lt);
    const c = s[lt + 1];
    if (c === undefined) {
      text += "<";
      break;
    }
    if (isAlpha(c)) {
      let j = lt + 1;
      while (j < n && !isSpace(s[j]) && s[j] !== "/" && s[j] !== ">") j += 1;
      const name = lower.slice(lt + 1, j);
      const end = skipTagRest(s, j);
      flush();
      if (end < 0) return out;
      i = end;
      if (name === "plaintext") {
        out += escapeText(s.slice(i));
        return out;
      }
      if (DROP_CONTENT.has(name) || RAWTEXT.has(name) || RCDATA.has(name)) {
        const close = findEndTag(s, lower, name, i);
        const inner = s.slice(i, close < 0 ? n : close);
        if (RAWTEXT.has(name)) out += escapeText(inner);
        if (RCDATA.has(name)) out += escapeText(decodeEntities(inner));
        if (close < 0) return out;
        const after = skipTagRest(s, close + 2 + name.length);
        if (after < 0) return out;
        i = after;
      }
      continue;
    }
    if (c === "/") {
      const d = s[lt + 2];
      if (d === undefined) {
        text += "</";
        break;
      }
      flush();
      if (d === ">") {
        i = lt + 3;
        continue;
      }
      if (isAlpha(d)) {
        let j = lt + 2;
        while (j < n && !isSpace(s[j]) && s[j] !== "/" && s[j] !== ">") j += 1;
        const end = skipTagRest(s, j);
        if (end < 0) return out;
        i = end;
        continue;
      }
      const gt = s.indexOf(">", lt + 2); // bogus comment
      if (gt < 0) return out;
      i = gt + 1;
      continue;
    }
    if (c === "!") {
      flush();
      if (s.startsWith("<!--", lt)) {
        let j = lt + 4;
        if (s[j] === ">") {
          i = j + 1;
          continue;
        }
        if (s.startsWith("->", j)) {
          i = j + 2;
          continue;
        }
        const a = s.indexOf("-->", j);
        const b = s.indexOf("--!>", j);
        if (a < 0 && b < 0) return out;
        i = a >= 0 && (b < 0 || a < b) ? a + 3 : b + 4;
        continue;
      }
      const gt = s.indexOf(">", lt + 2); // doctype, CDATA outside foreign content: bogus comment
      if (gt < 0) return out;
      i = gt + 1;
      continue;
    }
    if (c === "?") {
      flush();
      const gt = s.indexOf(">", lt + 2);
      if (gt < 0) return out;
      i = gt + 1;
      continue;
    }
    text += "<"; // a lone `<` is text
    i = lt + 1;
  }
  flush();
  return out;
}

// A display name (a visitor's, or an operator's from its token): trimmed, markup removed,
// cut to MAX_NAME_CHARS characters.
export function cleanName(name) {
  return Array.from(stripMarkup(name.trim())).slice(0, MAX_NAME_CHARS).join("");
}
