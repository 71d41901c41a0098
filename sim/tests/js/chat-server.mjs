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
//   PING_INTERVAL_MS              Engine.IO ping interval (25000, socket.io's default)
//   PING_TIMEOUT_MS               how long a pong may take (20000, socket.io's default); a peer
//                                 silent for interval + timeout is dropped. The simulator's
//                                 half-open attack waits that long (plus 5 s), so shorter
//                                 values keep its runs short
//   WEAKNESSES                    deliberate weaknesses to turn on (unset: none), see below
//   WORK_US_PER_MESSAGE           CPU to burn on every chat message, µs (0): a slow backend
//                                 whose one event loop saturates near 1e6 / this messages/s
// HTTP: GET /health answers 200 {"status":"ok", and presence counts}; nothing else is served
// (no /metrics, unless weakness 9 is on).
//
// WEAKNESSES exists so that the simulator's adversary can be proven to catch each weakness
// (sim/tests/security.rs); unset or empty, this is the correct server and nothing below
// changes. It is a comma-separated list of names (an unknown name exits with status 2);
// `all` turns on the first seven, the ones that let an attack through: 8 to 10 harm the
// target itself, which the adversary blames on whichever attack was under way, so they would
// blur the verdicts of the others and are turned on by name only. Each is a branch marked
// `// WEAK n (name):` in the code (1, 2 and 5 in lib/tokens.mjs and lib/images.mjs, turned
// on from here). Never run the server with any of them on as a real backend.
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
//   8. keeps_half_open    a connection whose peer vanished without closing is never reaped:
//                         the pong deadline is never armed, so a peer that stops answering is
//                         pinged once and kept, its visitor never ended (until its TCP
//                         connection closes). The ping values announced stay the same.
//   9. hoards_memory      frames over 4 x MAX_PAYLOAD_BYTES no longer close the connection: they
//                         are read whole (up to 1 GiB), refused as payload_too_large as any
//                         oversized event is, and their events kept forever. GET /metrics
//                         serves process_resident_memory_bytes (Prometheus text), so that the
//                         growth can be seen.
//  10. health_fails_under_load  once a socket has gone over its message budget, GET /health
//                         answers 503 {"status":"overloaded"}; the alarm is cleared by the
//                         first /health that reports it.
//
// Every handler is synchronous and runs from `onAny`, so one socket's events are handled in
// arrival order. socket.io calls `onAny` a tick after each packet is decoded, even once the
// socket is gone (only specific listeners are skipped then): a connection closed while its
// packets wait for that tick (a packet for a namespace it never joined closes it at once)
// fires `disconnect` first, so events arriving after `disconnect` are ignored.
import { createServer } from "node:http";
import { Server } from "socket.io";

import { envInt as readInt, envNames, failer, portArg } from "./lib/env.mjs";
import {
  MESSAGE_EVENTS,
  OPERATORS,
  ROLE_OF,
  Refusal,
  TYPING_EVENTS,
  byOperator,
  clientDelivery,
  eventSize,
  field,
  messageBody,
  messageIds,
  object,
  operatorDeliveries,
  timestamp,
  validateContent,
} from "./lib/payloads.mjs";
import { SlidingWindow } from "./lib/ratelimit.mjs";
import { MAX_NAME_CHARS, cleanName } from "./lib/sanitize.mjs";
import { verifyToken } from "./lib/tokens.mjs";

// ---------------------------------------------------------------- configuration

// WORK_US_PER_MESSAGE: the server's cost per message, spent on its one thread
function burn() {
  if (WORK_US <= 0) return;
  const until = process.hrtime.bigint() + BigInt(WORK_US) * 1000n;
  while (process.hrtime.bigint() < until);
}

const fail = failer("chat-server");
const envInt = (name, fallback) => readInt(fail, name, fallback);

const PORT = portArg(fail, "RELAY_JWT_SECRET=... node chat-server.mjs <port>");
const SECRET = process.env.RELAY_JWT_SECRET;
if (!SECRET) fail("RELAY_JWT_SECRET is required");

const RATE_LIMIT = envInt("RATE_LIMIT_PER_MINUTE", 100);
const TYPING_RATE_LIMIT = envInt("TYPING_RATE_LIMIT_PER_MINUTE", 600);
const MAX_PAYLOAD_BYTES = envInt("MAX_PAYLOAD_BYTES", 1_000_000);
const MAX_IMAGE_BYTES = envInt("MAX_IMAGE_BYTES", 1_000_000);
const PATH = process.env.SOCKET_PATH || "/chat";
// The namespace the chat lives on (`/` unless SOCKET_NAMESPACE is set).
const NAMESPACE = process.env.SOCKET_NAMESPACE || "/";
const WORK_US = envInt("WORK_US_PER_MESSAGE", 0);
const HOST = process.env.SOCKET_HOST || undefined;
const PING_INTERVAL_MS = envInt("PING_INTERVAL_MS", 25_000);
const PING_TIMEOUT_MS = envInt("PING_TIMEOUT_MS", 20_000);

// The deliberate weaknesses turned on, by name (see the header): empty for the correct server.
const WEAKNESS_NAMES = [
  "alg_none",
  "no_expiry",
  "payload_identity",
  "raw_visitor_names",
  "image_claims",
  "any_origin",
  "no_typing_limit",
  "keeps_half_open",
  "hoards_memory",
  "health_fails_under_load",
];
// `all`: the seven that let an attack through, not the three that harm the target itself
const WEAK = envNames(fail, "WEAKNESSES", "weakness", WEAKNESS_NAMES, WEAKNESS_NAMES.slice(0, 7));

const FRAME_LIMIT = 4 * MAX_PAYLOAD_BYTES; // a frame over this closes the connection
// WEAK 9 (hoards_memory): frames are read whole up to this, whatever MAX_PAYLOAD_BYTES says
const HOARDED_FRAME_LIMIT = 2 ** 30;

// WEAK 1 (alg_none), WEAK 2 (no_expiry): the token check loosened (lib/tokens.mjs)
const TOKEN_LAX = { algNone: WEAK.has("alg_none"), noExpiry: WEAK.has("no_expiry") };
// WEAK 5 (image_claims): images judged by their claimed type alone (lib/images.mjs)
const IMAGES = { maxImageBytes: MAX_IMAGE_BYTES, lax: { imageClaims: WEAK.has("image_claims") } };

// ---------------------------------------------------------------- relay state

const operators = new Map(); // operatorId -> { name, sockets: Set<socketId> }
const clients = new Map(); // socketId -> username
let operatorSockets = 0;
let connectedSockets = 0;

const messageId = messageIds();

// WEAK 9 (hoards_memory): the events of oversized frames, kept forever
const hoard = [];
// WEAK 10 (health_fails_under_load): a socket went over its message budget since the last
// /health reported it
let overloaded = false;

function operatorList() {
  return [...operators.entries()]
    .map(([operatorId, e]) => ({ operatorId, name: e.name }))
    .sort(byOperator);
}

// ---------------------------------------------------------------- the server

const isPath = (url, path) => url === path || url.startsWith(`${path}?`);

const httpServer = createServer((req, res) => {
  const url = req.url ?? "/";
  if (req.method === "GET" && isPath(url, "/health")) {
    if (WEAK.has("health_fails_under_load") && overloaded) {
      // WEAK 10 (health_fails_under_load): a flood is reported as the node being unwell, once
      overloaded = false;
      res.writeHead(503, { "content-type": "application/json" });
      res.end(JSON.stringify({ status: "overloaded" }));
      return;
    }
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
  if (req.method === "GET" && isPath(url, "/metrics") && WEAK.has("hoards_memory")) {
    // WEAK 9 (hoards_memory): the resident memory, where the simulator reads it
    const text = [
      "# HELP process_resident_memory_bytes Resident memory size in bytes.",
      "# TYPE process_resident_memory_bytes gauge",
      `process_resident_memory_bytes ${process.memoryUsage.rss()}`,
      "",
    ].join("\n");
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
    res.end(text);
    return;
  }
  res.writeHead(404, { "content-type": "text/plain" });
  res.end("not found");
});

const io = new Server(httpServer, {
  path: PATH,
  serveClient: false,
  // WEAK 9 (hoards_memory): frames are read whole, however large
  maxHttpBufferSize: WEAK.has("hoards_memory") ? HOARDED_FRAME_LIMIT : FRAME_LIMIT,
  pingInterval: PING_INTERVAL_MS,
  pingTimeout: PING_TIMEOUT_MS,
  // WEAK 6 (any_origin): `origin: "*"`. The correct server has no Origin check either (it
  // reflects any origin, with credentials, and sets no allowRequest), so in practice this flag
  // changes little: only the CORS headers of HTTP (polling) responses.
  cors: WEAK.has("any_origin") ? { origin: "*" } : { origin: true, credentials: true },
  // RECOVERY_MS: connection state recovery (socket.io 4.6+), sessions kept this long
  ...(process.env.RECOVERY_MS
    ? { connectionStateRecovery: { maxDisconnectionDuration: Number(process.env.RECOVERY_MS), skipMiddlewares: true } }
    : {}),
});

if (WEAK.has("keeps_half_open")) {
  // WEAK 8 (keeps_half_open): engine.io arms a connection's pong deadline each time it pings
  // (Socket#resetPingTimeout, engine.io 6.6); disarmed here, a peer that stops answering is
  // pinged once, then kept until its TCP connection closes. Answering peers are pinged on.
  io.engine.on("connection", (conn) => {
    if (typeof conn.resetPingTimeout !== "function") {
      process.stderr.write("chat-server: keeps_half_open: this engine.io has no resetPingTimeout\n");
      return;
    }
    conn.resetPingTimeout = () => {};
  });
}

const chat = io.of(NAMESPACE);

chat.on("connection", (socket) => {
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
      const who = verifyToken(presented, SECRET, TOKEN_LAX);
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
    const content = validateContent(body, IMAGES);
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
    const { toClient, broadcast } = operatorDeliveries(content, {
      from: sid,
      to,
      operatorId,
      operatorName,
      messageId: id,
      timestamp: ts,
    });
    chat.to(to).emit("incomingOperatorMessage", toClient);
    socket.to(OPERATORS).emit("operatorMessageBroadcast", broadcast);
    return { messageId: id };
  }

  function clientMessage(data) {
    burn();
    const content = validateContent(messageBody(object(data)), IMAGES);
    const id = messageId();
    const incoming = clientDelivery(content, { from: sid, messageId: id, timestamp: timestamp() });
    socket.to(OPERATORS).emit("incomingMessage", incoming);
    return { messageId: id };
  }

  function operatorTyping(data) {
    const req = object(data);
    const to = field(req, "to", "string", true);
    const isTyping = field(req, "isTyping", "boolean", true);
    if (!clients.has(to)) throw new Refusal("unknown_client", `no connected client ${JSON.stringify(to)}`);
    chat.to(to).emit("operatorTyping", { isTyping });
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
      if (wait !== null) {
        // WEAK 10 (health_fails_under_load): a flood raises the alarm /health reports
        if (WEAK.has("health_fails_under_load")) overloaded = true;
        return { retryAfterMs: Math.max(1, Math.floor(wait)) };
      }
    } else if (
      TYPING_EVENTS.has(event) &&
      !WEAK.has("no_typing_limit") && // WEAK 7 (no_typing_limit): typing events are never dropped
      state.typing.tryAcquire(now) !== null
    ) {
      return { dropped: true }; // over the typing budget: silently
    }
    const size = eventSize(event, args);
    // WEAK 9 (hoards_memory): what came in a frame the correct server would have closed on
    // is kept, forever
    if (WEAK.has("hoards_memory") && size > FRAME_LIMIT) hoard.push(args);
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
          chat.to(OPERATORS).except(sid).emit("operatorDisconnected", { operatorId, name: entry.name });
        }
      }
    } else if (role === "client") {
      if (clients.delete(sid)) chat.to(OPERATORS).except(sid).emit("chatEnded", { clientId: sid });
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
httpServer.listen(PORT, HOST, () => {
  process.stdout.write(`listening ${httpServer.address().port}\n`);
});
