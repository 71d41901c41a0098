// A correct implementation of docs/PROTOCOL.md on socket.io 4.8 and Node's http server: a
// backend kept outside the project, so the simulator's verdicts can be proven against a
// server that is not the Rust relay. It must earn zero violations.
//
// usage: RELAY_JWT_SECRET=... node chat-server.mjs <port>
//   port 0 picks a free port; the one line printed on stdout is `listening <port>`.
// environment:
//   RELAY_JWT_SECRET              HS256 secret for operator tokens (required)
//   RATE_LIMIT_PER_MINUTE         messages per socket per rolling minute (100)
//   TYPING_RATE_LIMIT_PER_MINUTE  typing events per socket per rolling minute (600)
//   MAX_PAYLOAD_BYTES             largest event (1000000); frames over 4x close the connection
//   MAX_IMAGE_BYTES               largest decoded image (1000000)
//   SOCKET_PATH                   Socket.IO path (/chat)
//   SOCKET_HOST                   listen address (unset: every interface, IPv4 and IPv6)
//   WEAKNESSES                    deliberate weaknesses to turn on (unset: none), see below
//   WORK_US_PER_MESSAGE           CPU to burn on every chat message, µs (0): a slow backend
//                                 whose one event loop saturates near 1e6 / this messages/s
//
// WEAKNESSES exists so that the simulator's adversary can be proven to catch each weakness
// (sim/tests/security.rs); unset or empty, this is the correct server and nothing below
// changes. `all` turns on every one, otherwise it is a comma-separated list of names (an
// unknown name exits with status 2). Each is a branch marked `// WEAK n (name):` in the code.
// Never run the server with any of them on as a real backend.
//   1. alg_none           a token whose header says "alg":"none" is accepted unsigned: any
//                         signature part, even an empty one, passes.
//   2. no_expiry          `exp` is not compared with the clock: expired tokens are accepted
//                         (the claim must still be present and a non-negative integer).
//   3. payload_identity   operatorMessage trusts the payload's `operatorId`/`operatorName`,
//                         when present, over the token's identity on operatorMessageBroadcast
//                         (top level and inside `message`; incomingOperatorMessage carries none).
//   4. raw_visitor_names  visitor names (join's `username`, sent on as `newChat.username`) keep
//                         their markup: still trimmed and cut to 100 characters.
//   5. image_claims       images are judged by the claimed `mimeType` alone: any `image/` type
//                         passes (image/svg+xml too), the bytes are never checked against it.
//                         The base64 and the decoded size limit are still enforced.
//   6. any_origin         socket.io `cors: { origin: "*" }`. The correct server checks no Origin
//                         either (it reflects any origin, with credentials), so this changes
//                         only the CORS headers of HTTP responses.
//   7. no_typing_limit    typing events are never dropped (TYPING_RATE_LIMIT_PER_MINUTE is
//                         still parsed, then ignored).
//
// Every handler is synchronous and runs from `onAny`, so one socket's events are handled in
// arrival order. socket.io calls `onAny` a tick after each packet is decoded, even once the
// socket is gone (only specific listeners are skipped then): a connection closed while its
// packets wait for that tick (a packet for a namespace it never joined closes it at once)
// fires `disconnect` first, so events arriving after `disconnect` are ignored.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import { Server } from "socket.io";

// ---------------------------------------------------------------- configuration

// WORK_US_PER_MESSAGE: the server's cost per message, spent on its one thread
function burn() {
  if (WORK_US <= 0) return;
  const until = process.hrtime.bigint() + BigInt(WORK_US) * 1000n;
  while (process.hrtime.bigint() < until);
}

function fail(message) {
  process.stderr.write(`chat-server: ${message}\n`);
  process.exit(2);
}

function envInt(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw)) fail(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  return Number(raw);
}

const portArg = process.argv[2];
if (portArg === undefined || !/^\d+$/.test(portArg) || Number(portArg) > 65535) {
  fail("usage: RELAY_JWT_SECRET=... node chat-server.mjs <port>");
}
const SECRET = process.env.RELAY_JWT_SECRET;
if (!SECRET) fail("RELAY_JWT_SECRET is required");

const RATE_LIMIT = envInt("RATE_LIMIT_PER_MINUTE", 100);
const TYPING_RATE_LIMIT = envInt("TYPING_RATE_LIMIT_PER_MINUTE", 600);
const MAX_PAYLOAD_BYTES = envInt("MAX_PAYLOAD_BYTES", 1_000_000);
const MAX_IMAGE_BYTES = envInt("MAX_IMAGE_BYTES", 1_000_000);
const PATH = process.env.SOCKET_PATH || "/chat";
const WORK_US = envInt("WORK_US_PER_MESSAGE", 0);
const HOST = process.env.SOCKET_HOST || undefined;

// The deliberate weaknesses turned on, by name (see the header): empty for the correct server.
const WEAKNESS_NAMES = [
  "alg_none",
  "no_expiry",
  "payload_identity",
  "raw_visitor_names",
  "image_claims",
  "any_origin",
  "no_typing_limit",
];
const WEAK = new Set();
for (const item of (process.env.WEAKNESSES ?? "").split(",")) {
  const name = item.trim();
  if (name === "") continue;
  if (name === "all") {
    for (const each of WEAKNESS_NAMES) WEAK.add(each);
  } else if (WEAKNESS_NAMES.includes(name)) {
    WEAK.add(name);
  } else {
    fail(`WEAKNESSES: unknown weakness ${JSON.stringify(name)}, expected all or a comma-separated list of ${WEAKNESS_NAMES.join(", ")}`);
  }
}

const WINDOW_MS = 60_000;
const JWT_LEEWAY_SECS = 5; // as the reference relay: clock skew tolerated on exp and nbf
const MAX_NAME_CHARS = 100;
const OPERATORS = "operators";
const IMAGE_MIME_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

// ---------------------------------------------------------------- sanitizing

// Every tag, comment and doctype removed, <script>/<style> with their content; the text
// kept, its character references decoded, then escaped as an HTML serializer escapes text
// (&, <, >, U+00A0), so the result never contains < or >. A small HTML tokenizer, following
// the WHATWG states closely enough that what a browser would treat as a tag is removed.

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

function stripMarkup(input) {
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

function cleanName(name) {
  return Array.from(stripMarkup(name.trim())).slice(0, MAX_NAME_CHARS).join("");
}

// ---------------------------------------------------------------- operator tokens (HS256)

const B64URL = /^[A-Za-z0-9_-]*$/;

function b64url(part) {
  if (!B64URL.test(part) || part.length % 4 === 1) return null;
  return Buffer.from(part, "base64url");
}

function jsonPart(part) {
  const bytes = b64url(part);
  if (bytes === null) return null;
  try {
    const v = JSON.parse(bytes.toString("utf8"));
    return v !== null && typeof v === "object" && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

const isU64 = (v) => Number.isSafeInteger(v) && v >= 0;
const absent = (v) => v === undefined || v === null;

// Returns {operatorId, name} or {error}.
function verifyToken(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return { error: "malformed token: expected three dot-separated parts" };
  const header = jsonPart(parts[0]);
  if (header === null || typeof header.alg !== "string") return { error: "malformed token: bad header" };
  // WEAK 1 (alg_none): an unsigned token ("alg":"none") skips the signature check, so any
  // signature part, even an empty one, is accepted
  const unsigned = WEAK.has("alg_none") && header.alg === "none";
  if (!unsigned) {
    if (header.alg !== "HS256") return { error: `unsupported algorithm ${JSON.stringify(header.alg)}, only HS256 is accepted` };
    const signature = b64url(parts[2]);
    if (signature === null) return { error: "malformed token: signature is not base64url" };
    const expected = createHmac("sha256", SECRET).update(`${parts[0]}.${parts[1]}`).digest();
    if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
      return { error: "bad signature" };
    }
  }
  const claims = jsonPart(parts[1]);
  if (
    claims === null ||
    typeof claims.sub !== "string" ||
    typeof claims.name !== "string" ||
    !isU64(claims.exp) ||
    !(absent(claims.nbf) || isU64(claims.nbf)) ||
    !(absent(claims.iat) || isU64(claims.iat))
  ) {
    return { error: "malformed token: claims need sub, name and exp" };
  }
  const now = Math.floor(Date.now() / 1000);
  // WEAK 2 (no_expiry): `exp` is never compared with the clock, so expired tokens are accepted
  if (!WEAK.has("no_expiry") && now > claims.exp + JWT_LEEWAY_SECS) return { error: "token expired" };
  if (!absent(claims.nbf) && claims.nbf > now + JWT_LEEWAY_SECS) return { error: "token not valid yet" };
  if (!/^\+?[0-9]+$/.test(claims.sub) || !Number.isSafeInteger(Number(claims.sub))) {
    return { error: `subject ${JSON.stringify(claims.sub)} is not a numeric operator id` };
  }
  return { operatorId: Number(claims.sub), name: cleanName(claims.name) };
}

// ---------------------------------------------------------------- images

// Standard alphabet, padding optional but correct when present, canonical trailing bits.
function decodeBase64(body) {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) return null;
  const bare = body.replace(/=+$/, "");
  if (bare.length !== body.length && body.length % 4 !== 0) return null;
  const rem = bare.length % 4;
  if (rem === 1) return null;
  if (rem > 1) {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const last = alphabet.indexOf(bare[bare.length - 1]);
    if (last & (rem === 2 ? 0x0f : 0x03)) return null;
  }
  return Buffer.from(bare, "base64");
}

function startsWith(bytes, prefix) {
  if (bytes.length < prefix.length) return false;
  for (let k = 0; k < prefix.length; k += 1) if (bytes[k] !== prefix[k]) return false;
  return true;
}

const ascii = (s) => Array.from(s, (c) => c.charCodeAt(0));

function contentMatches(mime, bytes) {
  switch (mime) {
    case "image/png":
      return startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    case "image/jpeg":
      return startsWith(bytes, [0xff, 0xd8, 0xff]);
    case "image/gif":
      return startsWith(bytes, ascii("GIF87a")) || startsWith(bytes, ascii("GIF89a"));
    case "image/webp":
      return bytes.length >= 12 && startsWith(bytes, ascii("RIFF")) && startsWith(bytes.subarray(8), ascii("WEBP"));
    default:
      return false;
  }
}

// Returns {size} (decoded bytes) or {code, message}.
function validateImage(image, mimeType) {
  const declared = typeof mimeType === "string" ? mimeType : "";
  if (WEAK.has("image_claims")) {
    // WEAK 5 (image_claims): any claimed type starting with image/ is accepted (image/svg+xml
    // too), not just IMAGE_MIME_TYPES
    if (!declared.startsWith("image/")) {
      return { code: "invalid_payload", message: `mimeType ${JSON.stringify(declared)} is not an image/ type` };
    }
  } else if (!IMAGE_MIME_TYPES.has(declared)) {
    return { code: "invalid_payload", message: `mimeType ${JSON.stringify(declared)} is not one of image/png, image/jpeg, image/gif, image/webp` };
  }
  let body = image;
  if (image.startsWith("data:")) {
    const comma = image.indexOf(",");
    if (comma < 0) return { code: "invalid_payload", message: "image is not base64: data URL without a comma" };
    const media = image.slice(5, comma);
    if (!media.endsWith(";base64")) return { code: "invalid_payload", message: "image is not base64: data URL is not ;base64" };
    const type = media.slice(0, -";base64".length);
    if (type !== declared) {
      return { code: "invalid_payload", message: `data URL type ${JSON.stringify(type)} differs from mimeType ${JSON.stringify(declared)}` };
    }
    body = image.slice(comma + 1);
  }
  const estimated = Math.floor(body.length / 4) * 3;
  if (estimated > MAX_IMAGE_BYTES + 3) {
    return { code: "payload_too_large", message: `image of ${estimated} bytes is over the ${MAX_IMAGE_BYTES}-byte limit` };
  }
  const bytes = decodeBase64(body);
  if (bytes === null) return { code: "invalid_payload", message: "image is not base64: invalid base64" };
  if (bytes.length > MAX_IMAGE_BYTES) {
    return { code: "payload_too_large", message: `image of ${bytes.length} bytes is over the ${MAX_IMAGE_BYTES}-byte limit` };
  }
  // WEAK 5 (image_claims): the bytes are never checked against the claimed type (no magic bytes)
  if (!WEAK.has("image_claims") && !contentMatches(declared, bytes)) {
    return { code: "invalid_payload", message: `image content is not ${declared}` };
  }
  return { size: bytes.length };
}

// ---------------------------------------------------------------- payload shapes

class Refusal {
  constructor(code, message) {
    this.code = code;
    this.message = message;
  }
}

const bad = (message) => new Refusal("invalid_payload", `bad payload: ${message}`);

function object(data) {
  if (data === null || typeof data !== "object" || Array.isArray(data) || Buffer.isBuffer(data)) {
    throw bad("expected an object");
  }
  return data;
}

function field(data, key, kind, required) {
  const v = data[key];
  if (absent(v)) {
    if (required) throw bad(`missing field \`${key}\``);
    return undefined;
  }
  const ok = kind === "u64" ? isU64(v) : typeof v === kind;
  if (!ok) throw bad(`\`${key}\` must be ${kind === "u64" ? "a non-negative integer" : `a ${kind}`}`);
  return v;
}

function messageBody(data) {
  const type = field(data, "type", "string", true);
  if (type !== "text" && type !== "image") {
    throw bad(`unknown variant ${JSON.stringify(type)}, expected \`text\` or \`image\``);
  }
  return {
    type,
    message: field(data, "message", "string", false),
    image: field(data, "image", "string", false),
    name: field(data, "name", "string", false),
    mimeType: field(data, "mimeType", "string", false),
    size: field(data, "size", "u64", false),
  };
}

// A message that passed validation: what every delivery carries.
function validateContent(body) {
  if (body.type === "text") {
    if (body.message === undefined) throw new Refusal("invalid_payload", "a text message needs `message`");
    const text = stripMarkup(body.message);
    if (text.trim() === "") throw new Refusal("invalid_payload", "text is empty once markup is removed");
    return { type: "text", text };
  }
  if (body.image === undefined) throw new Refusal("invalid_payload", "an image message needs `image`");
  const checked = validateImage(body.image, body.mimeType);
  if (checked.code) throw new Refusal(checked.code, checked.message);
  return {
    type: "image",
    image: body.image,
    name: stripMarkup(body.name ?? "image"),
    mimeType: body.mimeType,
    size: checked.size,
  };
}

// ---------------------------------------------------------------- relay state

const operators = new Map(); // operatorId -> { name, sockets: Set<socketId> }
const clients = new Map(); // socketId -> username
let operatorSockets = 0;
let connectedSockets = 0;

const idPrefix = randomBytes(6).toString("hex");
let nextId = 0;
const messageId = () => `${idPrefix}-${(nextId += 1)}`;
const timestamp = () => new Date().toISOString();

// Exact sliding log: at most `limit` accepted events in any window.
class SlidingWindow {
  constructor(limit) {
    this.limit = limit;
    this.accepted = [];
  }

  // null when counted, else milliseconds until the oldest counted event leaves the window
  tryAcquire(now) {
    while (this.accepted.length > 0 && now - this.accepted[0] >= WINDOW_MS) this.accepted.shift();
    if (this.accepted.length < this.limit) {
      this.accepted.push(now);
      return null;
    }
    const oldest = this.accepted.length > 0 ? this.accepted[0] : now;
    return Math.max(0, oldest + WINDOW_MS - now);
  }
}

function operatorList() {
  return [...operators.entries()]
    .map(([operatorId, e]) => ({ operatorId, name: e.name }))
    .sort((a, b) => a.operatorId - b.operatorId || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

// ---------------------------------------------------------------- the server

const MESSAGE_EVENTS = new Set(["operatorMessage", "clientMessage"]);
const TYPING_EVENTS = new Set(["operatorTyping", "clientTyping"]);
const ROLE_OF = {
  operatorMessage: "operator",
  operatorTyping: "operator",
  getConnectedOperators: "operator",
  clientMessage: "client",
  clientTyping: "client",
};

const httpServer = createServer((req, res) => {
  const url = req.url ?? "/";
  if (req.method === "GET" && (url === "/health" || url.startsWith("/health?"))) {
    const body = JSON.stringify({
      status: "ok",
      sockets: connectedSockets,
      operators: operators.size,
      operatorSockets,
      clients: clients.size,
    });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(body);
    return;
  }
  res.writeHead(404, { "content-type": "text/plain" });
  res.end("not found");
});

const io = new Server(httpServer, {
  path: PATH,
  serveClient: false,
  maxHttpBufferSize: 4 * MAX_PAYLOAD_BYTES, // a frame over this closes the connection
  // WEAK 6 (any_origin): `origin: "*"`. The correct server has no Origin check either (it
  // reflects any origin, with credentials, and sets no allowRequest), so in practice this flag
  // changes little: only the CORS headers of HTTP (polling) responses.
  cors: WEAK.has("any_origin") ? { origin: "*" } : { origin: true, credentials: true },
});

io.on("connection", (socket) => {
  connectedSockets += 1;
  const sid = socket.id;
  const handshakeToken = typeof socket.handshake.auth?.token === "string" ? socket.handshake.auth.token : undefined;
  const state = {
    role: null, // null | "operator" | "client"
    operator: null, // { operatorId, name } once joined as an operator
    messages: new SlidingWindow(RATE_LIMIT),
    typing: new SlidingWindow(TYPING_RATE_LIMIT),
  };

  const answer = (ack, payload) => {
    if (ack) ack(payload);
  };

  const refuse = (event, ack, refusal) => {
    answer(ack, { error: refusal.code });
    socket.emit("relayError", { event, code: refusal.code, message: refusal.message });
    if (refusal.code === "unauthorized") socket.disconnect();
  };

  function join(data) {
    const req = object(data);
    const role = field(req, "role", "string", true);
    field(req, "name", "string", false);
    field(req, "operatorId", "u64", false);
    const token = field(req, "token", "string", false);
    const username = field(req, "username", "string", false);
    if (state.role !== null) throw new Refusal("forbidden", "this socket has already joined");
    if (role === "operator") {
      const presented = token ?? handshakeToken;
      if (presented === undefined) throw new Refusal("unauthorized", "no operator token");
      const who = verifyToken(presented);
      if (who.error) throw new Refusal("unauthorized", who.error);
      state.role = "operator";
      state.operator = { operatorId: who.operatorId, name: who.name };
      let entry = operators.get(who.operatorId);
      const first = entry === undefined;
      if (first) {
        entry = { name: who.name, sockets: new Set() };
        operators.set(who.operatorId, entry);
      }
      entry.sockets.add(sid);
      operatorSockets += 1;
      if (first) {
        socket.to(OPERATORS).emit("operatorConnected", { operatorId: who.operatorId, name: entry.name });
      }
      // joined only now, so no tab hears about its own operator arriving
      socket.join(OPERATORS);
      return {};
    }
    if (role === "client") {
      // WEAK 4 (raw_visitor_names): the name is trimmed and cut to MAX_NAME_CHARS, but its
      // markup is kept as sent (no stripMarkup)
      const clean = WEAK.has("raw_visitor_names")
        ? (raw) => Array.from(raw.trim()).slice(0, MAX_NAME_CHARS).join("")
        : cleanName;
      const name = username === undefined ? "" : clean(username);
      if (name === "") throw new Refusal("invalid_payload", "a client joins with a non-empty username");
      state.role = "client";
      clients.set(sid, name);
      socket.to(OPERATORS).emit("newChat", { clientId: sid, username: name });
      return {};
    }
    throw new Refusal("invalid_payload", `unknown role ${JSON.stringify(role)}: expected "operator" or "client"`);
  }

  function operatorMessage(data) {
    burn();
    const req = object(data);
    const to = field(req, "to", "string", true);
    const body = messageBody(req);
    // accepted for the frontend's sake, never trusted (unless WEAK 3 below)
    const claimedId = field(req, "operatorId", "u64", false);
    const claimedName = field(req, "operatorName", "string", false);
    const content = validateContent(body);
    if (!clients.has(to)) throw new Refusal("unknown_client", `no connected client ${JSON.stringify(to)}`);
    const id = messageId();
    const ts = timestamp();
    let { operatorId, name: operatorName } = state.operator;
    if (WEAK.has("payload_identity")) {
      // WEAK 3 (payload_identity): the payload's operatorId/operatorName, when present, replace
      // the authenticated identity (the claimed name is still sanitized like a token's name)
      operatorId = claimedId ?? operatorId;
      if (claimedName !== undefined) operatorName = cleanName(claimedName);
    }
    const toClient = { from: sid, type: content.type };
    const forOperators = { from: "operator" };
    if (content.type === "text") {
      toClient.message = content.text;
      forOperators.text = content.text;
    } else {
      toClient.image = content.image;
      toClient.name = content.name;
      toClient.mimeType = content.mimeType;
      forOperators.image = content.image;
      forOperators.mimeType = content.mimeType;
      forOperators.name = content.name;
    }
    toClient.messageId = id;
    toClient.timestamp = ts;
    Object.assign(forOperators, { timestamp: ts, operatorId, operatorName, messageId: id });
    io.to(to).emit("incomingOperatorMessage", toClient);
    socket.to(OPERATORS).emit("operatorMessageBroadcast", { clientId: to, operatorId, operatorName, message: forOperators });
    return { messageId: id };
  }

  function clientMessage(data) {
    burn();
    const content = validateContent(messageBody(object(data)));
    const id = messageId();
    const incoming = { from: sid, type: content.type };
    if (content.type === "text") {
      incoming.message = content.text;
    } else {
      incoming.image = content.image;
      incoming.name = content.name;
      incoming.mimeType = content.mimeType;
      incoming.size = content.size;
    }
    incoming.messageId = id;
    incoming.timestamp = timestamp();
    socket.to(OPERATORS).emit("incomingMessage", incoming);
    return { messageId: id };
  }

  function operatorTyping(data) {
    const req = object(data);
    const to = field(req, "to", "string", true);
    const isTyping = field(req, "isTyping", "boolean", true);
    if (!clients.has(to)) throw new Refusal("unknown_client", `no connected client ${JSON.stringify(to)}`);
    io.to(to).emit("operatorTyping", { isTyping });
    return {};
  }

  function clientTyping(data) {
    const isTyping = field(object(data), "isTyping", "boolean", true);
    socket.to(OPERATORS).emit("clientTyping", { from: sid, isTyping });
    return {};
  }

  function getConnectedOperators() {
    socket.emit("connectedOperatorsList", operatorList());
    return {};
  }

  const HANDLERS = { join, operatorMessage, clientMessage, operatorTyping, clientTyping, getConnectedOperators };

  // Role, then budget, then size, then shape and content: the reference relay's order.
  function route(event, args) {
    if (event !== "join") {
      const role = Object.hasOwn(ROLE_OF, event) ? ROLE_OF[event] : undefined;
      if (role === undefined) throw new Refusal("invalid_payload", `unknown event ${JSON.stringify(event)}`);
      if (state.role === null) throw new Refusal("not_joined", "send join first");
      if (state.role !== role) throw new Refusal("forbidden", "this role may not send this event");
    }
    const now = performance.now();
    if (MESSAGE_EVENTS.has(event)) {
      // every message a joined socket sends counts, valid or not
      const wait = state.messages.tryAcquire(now);
      if (wait !== null) return { retryAfterMs: Math.max(1, Math.floor(wait)) };
    } else if (
      TYPING_EVENTS.has(event) &&
      !WEAK.has("no_typing_limit") && // WEAK 7 (no_typing_limit): typing events are never dropped
      state.typing.tryAcquire(now) !== null
    ) {
      return { dropped: true }; // over the typing budget: silently
    }
    let size;
    try {
      size = Buffer.byteLength(JSON.stringify([event, ...args]));
    } catch {
      size = Infinity;
    }
    if (size > MAX_PAYLOAD_BYTES) {
      throw new Refusal("payload_too_large", `event is over the ${MAX_PAYLOAD_BYTES}-byte limit`);
    }
    return { accepted: HANDLERS[event](args[0]) };
  }

  socket.onAny((rawEvent, ...args) => {
    // dropped once `disconnect` has run: a join now would add presence nothing removes
    if (!socket.connected) return;
    const ack = args.length > 0 && typeof args[args.length - 1] === "function" ? args.pop() : undefined;
    const event = String(rawEvent);
    let outcome;
    try {
      outcome = route(event, args);
    } catch (e) {
      if (e instanceof Refusal) {
        refuse(event, ack, e);
      } else {
        // not reached: every handler validates before it delivers anything
        process.stderr.write(`chat-server: ${event} from ${sid} failed: ${e?.stack ?? e}\n`);
        refuse(event, ack, new Refusal("invalid_payload", "could not handle this event"));
      }
      return;
    }
    if (outcome.retryAfterMs !== undefined) {
      answer(ack, { retryAfterMs: outcome.retryAfterMs });
      socket.emit("rateLimitExceeded", { message: "Too many messages", retryAfterMs: outcome.retryAfterMs });
    } else if (outcome.dropped) {
      answer(ack, {});
    } else {
      answer(ack, outcome.accepted);
    }
  });

  socket.on("disconnect", () => {
    connectedSockets -= 1;
    const role = state.role;
    state.role = null;
    // the socket has left its rooms by now; `except` keeps that true whatever the version
    if (role === "operator") {
      const { operatorId } = state.operator;
      const entry = operators.get(operatorId);
      if (entry && entry.sockets.delete(sid)) {
        operatorSockets -= 1;
        if (entry.sockets.size === 0) {
          operators.delete(operatorId);
          io.to(OPERATORS).except(sid).emit("operatorDisconnected", { operatorId, name: entry.name });
        }
      }
    } else if (role === "client") {
      if (clients.delete(sid)) io.to(OPERATORS).except(sid).emit("chatEnded", { clientId: sid });
    }
  });
});

// ---------------------------------------------------------------- lifecycle

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(0), 2000).unref();
  io.close(() => process.exit(0));
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

httpServer.on("error", (e) => fail(`cannot listen: ${e.message}`));
httpServer.listen(Number(portArg), HOST, () => {
  process.stdout.write(`listening ${httpServer.address().port}\n`);
});
