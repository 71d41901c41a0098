// A correct implementation of docs/PROTOCOL.md as a cluster: any number of these processes
// on one Redis behave as one relay. socket.io 4.8 with @socket.io/redis-adapter carries every
// broadcast to every node; presence lives in Redis, so every rule holds cluster-wide: `to` is
// checked against every node's visitors, the operators list is the cluster's (one entry per
// operator), an operator's first and last socket are decided once for the whole cluster (each
// change is one Lua script), and a node that dies without a word has its operators' and
// visitors' departures announced by one survivor within a few seconds (PROTOCOL: within 10 s).
// A backend kept outside the project, so the simulator's verdicts on clusters can be proven
// against a server that is not the Rust relay. It must earn zero violations.
//
// usage: REDIS_URL=redis://127.0.0.1:6379 RELAY_JWT_SECRET=... node cluster-server.mjs <port>
//   port 0 picks a free port; the one line printed on stdout is `listening <port>`, once the
//   node is in the cluster (subscribed, heartbeat written).
// environment:
//   REDIS_URL                     the cluster's Redis (required)
//   REDIS_PREFIX                  prefix of every key and channel (chat): separate clusters,
//                                 e.g. test runs, on one Redis
//   RELAY_JWT_SECRET              HS256 secret for operator tokens (required)
//   RATE_LIMIT_PER_MINUTE         messages per socket per rolling minute (100)
//   TYPING_RATE_LIMIT_PER_MINUTE  typing events per socket per rolling minute (600)
//   MAX_PAYLOAD_BYTES             largest event (1000000); frames over 4x close the connection
//   MAX_IMAGE_BYTES               largest decoded image (1000000)
//   SOCKET_PATH                   Socket.IO path (/chat)
//   SOCKET_HOST                   listen address (unset: every interface, IPv4 and IPv6)
//   PING_INTERVAL_MS              Engine.IO ping interval (25000, socket.io's default)
//   PING_TIMEOUT_MS               how long a pong may take (20000, socket.io's default)
//   CORS_ORIGIN                   browser origins allowed, comma-separated (unset or *: any, as
//                                 chat-server.mjs); others get 403 on every handshake, polling
//                                 and WebSocket alike. A request without Origin (not a browser)
//                                 is let in
//   CLUSTER_FAULTS                deliberate cluster faults to turn on (unset: none), see below
// HTTP: GET /health answers 200 {"status":"ok", node, this node's presence counts} (503
// {"status":"degraded"} while Redis is unreachable); GET /metrics, in Prometheus text,
// process_resident_memory_bytes and this node's relay_connected_clients and
// relay_connected_operator_sockets (the simulator sums them over the nodes).
//
// CLUSTER_FAULTS exists so that the simulator can be proven to catch each fault; unset or
// empty, this is the correct cluster. A comma-separated list of names, or `all` (an unknown
// name exits with status 2); each is a branch marked `// FAULT n (name):` in the code. Apart
// from its fault, a node behaves correctly.
//   1. local_to           `to` of operatorMessage and operatorTyping is checked against this
//                         node's own visitors only: a valid reply to a visitor connected to
//                         another node is refused with ack {error:"unknown_client"} and
//                         relayError{code:"unknown_client"} (the bug a real team had).
//   2. late_reap          a dead node's operators and visitors are announced gone about 20 s
//                         after its death instead of within about 3 s (survivors wait 17 s
//                         after noticing its heartbeat missing, before reaping).
//
// Dead nodes: every node renews its heartbeat every second; one not renewed for 3 s is dead.
// Every 0.5 s each survivor looks; the first to take a dead node off the list (one Lua script)
// removes its sockets from presence and announces chatEnded for its visitors and
// operatorDisconnected for the operators whose last socket was there, so 2 to 4 s after the
// death. A node that stalled past 3 s and was taken for dead closes its sockets when it wakes
// (their departures were announced; they reconnect as new sockets); a node that finds its
// heartbeat gone because Redis restarted empty puts its sockets back, announcing nothing.
// What this cannot order: an operator's last tab leaving on one node while a new tab joins on
// another at the same moment are decided atomically, but the two announcements travel apart,
// so other operators may hear them in either order (so does the reference relay).
//
// Redis keys (prefix p): p:nodes (set of node ids), p:alive:<node> (the heartbeat, expiring),
// p:reaped:<node> (a while after survivors took the node for dead), p:ops (hash operatorId ->
// name: the operators online), p:op:<id> (set of node/sid: that operator's sockets),
// p:clients (hash sid -> node: the visitors online), p:node:<node> (set of o/<id>/<sid> and
// c/<sid>: what leaves with that node). Broadcasts use the adapter's channels, <p>-socket.io#...
//
// A socket's events, its disconnection included, wait in one queue and are handled one at a
// time in arrival order (a handler may wait on Redis), so a message sent just before leaving
// still goes out before its chatEnded; every node publishes on one Redis connection, so what
// one socket sends reaches every node in that order. Events arriving after `disconnect` are
// ignored, as in chat-server.mjs. A socket with more than 1,024 events (or 8 x
// MAX_PAYLOAD_BYTES) waiting is disconnected.
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";

import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";
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
import { cleanName } from "./lib/sanitize.mjs";
import { verifyToken } from "./lib/tokens.mjs";

// ---------------------------------------------------------------- configuration

const fail = failer("cluster-server");
const envInt = (name, fallback) => readInt(fail, name, fallback);

const PORT = portArg(fail, "REDIS_URL=redis://... RELAY_JWT_SECRET=... node cluster-server.mjs <port>");
const SECRET = process.env.RELAY_JWT_SECRET;
if (!SECRET) fail("RELAY_JWT_SECRET is required");
const REDIS_URL = process.env.REDIS_URL;
if (!REDIS_URL) fail("REDIS_URL is required");
const PREFIX = process.env.REDIS_PREFIX || "chat";

const RATE_LIMIT = envInt("RATE_LIMIT_PER_MINUTE", 100);
const TYPING_RATE_LIMIT = envInt("TYPING_RATE_LIMIT_PER_MINUTE", 600);
const MAX_PAYLOAD_BYTES = envInt("MAX_PAYLOAD_BYTES", 1_000_000);
const MAX_IMAGE_BYTES = envInt("MAX_IMAGE_BYTES", 1_000_000);
const PATH = process.env.SOCKET_PATH || "/chat";
const HOST = process.env.SOCKET_HOST || undefined;
const PING_INTERVAL_MS = envInt("PING_INTERVAL_MS", 25_000);
const PING_TIMEOUT_MS = envInt("PING_TIMEOUT_MS", 20_000);
const ORIGINS = (process.env.CORS_ORIGIN ?? "")
  .split(",")
  .map((o) => o.trim())
  .filter((o) => o !== "");
const ANY_ORIGIN = ORIGINS.length === 0 || ORIGINS.includes("*");

// The deliberate faults turned on, by name (see the header): empty for the correct cluster.
const FAULTS = envNames(fail, "CLUSTER_FAULTS", "fault", ["local_to", "late_reap"]);

const FRAME_LIMIT = 4 * MAX_PAYLOAD_BYTES; // a frame over this closes the connection
const MAX_QUEUED_EVENTS = 1024; // waiting in one socket's queue; more disconnects it
const MAX_QUEUED_BYTES = 8 * MAX_PAYLOAD_BYTES;
const IMAGES = { maxImageBytes: MAX_IMAGE_BYTES };

const NODE = randomBytes(8).toString("hex"); // this process in the cluster
const HEARTBEAT_MS = 1000;
const NODE_TTL_MS = 3000; // a node whose heartbeat is this old is dead
const REAP_EVERY_MS = 500;
const REAPED_MARK_MS = 60_000; // how long a reaped node can still learn it was taken for dead
// FAULT 2 (late_reap): how long survivors wait, once a heartbeat is missing, before reaping
const LATE_REAP_WAIT_MS = 17_000;
const REDIS_CONNECT_MS = 5000;

const key = (...parts) => [PREFIX, ...parts].join(":");
const operatorRoom = (operatorId) => `operator:${operatorId}`;

// ---------------------------------------------------------------- Redis

// `redis` runs commands and publishes the adapter's broadcasts (one connection, so a node's
// presence changes and broadcasts reach Redis in the order they were made); `sub` only listens.
const redis = createClient({ url: REDIS_URL });
const sub = redis.duplicate();
let redisUp = false;
for (const [client, role] of [
  [redis, "commands"],
  [sub, "subscriptions"],
]) {
  client.on("error", (e) => {
    // node-redis reconnects by itself; said once per outage, not once per retry
    if (redisUp) process.stderr.write(`cluster-server: Redis (${role}): ${e.message}\n`);
    redisUp = false;
  });
  client.on("ready", () => {
    redisUp = redis.isReady && sub.isReady;
  });
}

// Commands as Redis spells them: replies are integers, strings, null (nil) and arrays (and an
// object for HGETALL), whatever the client's typed wrappers would make of them.
const command = (...args) => redis.sendCommand(args.map(String));
const script = (source, keys, args) => command("EVAL", source, keys.length, ...keys, ...args);

// An operator socket joins: 1 when it is that operator's first socket in the cluster.
// KEYS p:op:<id>, p:ops, p:node:<node>  ARGV node/sid, id, name, o/<id>/<sid>
const ADD_OPERATOR = `
redis.call('SADD', KEYS[3], ARGV[4])
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 and redis.call('SCARD', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  return 1
end
return 0`;

// An operator socket leaves: the operator's name when that was its last socket in the
// cluster (the operator is then offline), else nil.
// KEYS p:op:<id>, p:ops, p:node:<node>  ARGV node/sid, id, o/<id>/<sid>
const REMOVE_OPERATOR = `
redis.call('SREM', KEYS[3], ARGV[3])
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 and redis.call('SCARD', KEYS[1]) == 0 then
  local name = redis.call('HGET', KEYS[2], ARGV[2]) or ''
  redis.call('HDEL', KEYS[2], ARGV[2])
  return name
end
return false`;

// KEYS p:clients, p:node:<node>  ARGV sid, node
const ADD_CLIENT = `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], 'c/' .. ARGV[1])
return 1`;

// A visitor leaves: 1 when it was online (0: a survivor already announced it gone).
// KEYS p:clients, p:node:<node>  ARGV sid
const REMOVE_CLIENT = `
redis.call('SREM', KEYS[2], 'c/' .. ARGV[1])
return redis.call('HDEL', KEYS[1], ARGV[1])`;

// This node's heartbeat: alive for ARGV[1] ms more. Returns {lost, reaped}: lost is 1 when
// Redis had no heartbeat of this node (a first beat, a Redis that restarted empty, or a node
// taken for dead); reaped is 1 when survivors took it for dead.
// KEYS p:alive:<node>, p:nodes, p:reaped:<node>  ARGV ttl, node
const HEARTBEAT = `
local lost = 1 - redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return {lost, redis.call('DEL', KEYS[3])}`;

// A dead node's sockets leave, once: only the survivor whose call still finds the node listed
// (and its heartbeat gone) takes it off, and gets what to announce, flat triples
// o, operatorId, name (the operator's last socket was there) and c, sid, ''.
// KEYS p:nodes, p:alive:<dead>, p:node:<dead>, p:ops, p:clients, p:reaped:<dead>
// ARGV prefix, dead, reaped-mark ttl
const REAP = `
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('SREM', KEYS[1], ARGV[2]) == 0 then
  return {}
end
local gone = {}
for _, held in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local rest = string.sub(held, 3)
  if string.sub(held, 1, 1) == 'o' then
    local slash = string.find(rest, '/', 1, true)
    local id, sid = string.sub(rest, 1, slash - 1), string.sub(rest, slash + 1)
    local sockets = ARGV[1] .. ':op:' .. id
    if redis.call('SREM', sockets, ARGV[2] .. '/' .. sid) == 1 and redis.call('SCARD', sockets) == 0 then
      local name = redis.call('HGET', KEYS[4], id) or ''
      redis.call('HDEL', KEYS[4], id)
      table.insert(gone, 'o'); table.insert(gone, id); table.insert(gone, name)
    end
  elseif redis.call('HDEL', KEYS[5], rest) == 1 then
    table.insert(gone, 'c'); table.insert(gone, rest); table.insert(gone, '')
  end
end
redis.call('DEL', KEYS[3])
redis.call('SET', KEYS[6], '1', 'PX', ARGV[3])
return gone`;

// ---------------------------------------------------------------- presence

// This node's own sockets: its /health and /metrics, and what it puts back into a Redis that
// lost them. The cluster's presence is in Redis.
const operators = new Map(); // operatorId -> { name, sockets: Set<socketId> }, this node's
const clients = new Map(); // socketId -> username, this node's
let operatorSockets = 0;
let connectedSockets = 0;

const opKeys = (operatorId) => [key("op", operatorId), key("ops"), key("node", NODE)];

function addOperatorHere(operatorId, name, sid) {
  let entry = operators.get(operatorId);
  if (entry === undefined) {
    entry = { name, sockets: new Set() };
    operators.set(operatorId, entry);
  }
  entry.sockets.add(sid);
  operatorSockets += 1;
}

function removeOperatorHere(operatorId, sid) {
  const entry = operators.get(operatorId);
  if (entry === undefined || !entry.sockets.delete(sid)) return;
  operatorSockets -= 1;
  if (entry.sockets.size === 0) operators.delete(operatorId);
}

// true when this is the operator's first socket in the cluster
async function addOperator(operatorId, name, sid) {
  const first = await script(ADD_OPERATOR, opKeys(operatorId), [`${NODE}/${sid}`, operatorId, name, `o/${operatorId}/${sid}`]);
  return first === 1;
}

// the operator's name when this was its last socket in the cluster, else null
async function removeOperator(operatorId, sid) {
  return script(REMOVE_OPERATOR, opKeys(operatorId), [`${NODE}/${sid}`, operatorId, `o/${operatorId}/${sid}`]);
}

const addClient = (sid) => script(ADD_CLIENT, [key("clients"), key("node", NODE)], [sid, NODE]);

async function removeClient(sid) {
  return (await script(REMOVE_CLIENT, [key("clients"), key("node", NODE)], [sid])) === 1;
}

// A connected visitor, on any node.
async function isClient(sid) {
  if (clients.has(sid)) return true;
  // FAULT 1 (local_to): only this node's visitors count, so a reply to a visitor on another
  // node is refused as unknown_client
  if (FAULTS.has("local_to")) return false;
  return (await command("HEXISTS", key("clients"), sid)) === 1;
}

// The cluster's operators, one entry each.
async function operatorList() {
  const reply = await command("HGETALL", key("ops"));
  // node-redis makes the flat array Redis sends an object; either will do
  const pairs = Array.isArray(reply) ? reply.flatMap((v, i) => (i % 2 === 0 ? [[v, reply[i + 1]]] : [])) : Object.entries(reply);
  return pairs.map(([id, name]) => ({ operatorId: Number(id), name })).sort(byOperator);
}

// ---------------------------------------------------------------- the server

const messageId = messageIds();
const isPath = (url, path) => url === path || url.startsWith(`${path}?`);

function metrics() {
  return [
    "# HELP process_resident_memory_bytes Resident memory size in bytes.",
    "# TYPE process_resident_memory_bytes gauge",
    `process_resident_memory_bytes ${process.memoryUsage.rss()}`,
    "# HELP relay_connected_clients Visitors joined on this node.",
    "# TYPE relay_connected_clients gauge",
    `relay_connected_clients ${clients.size}`,
    "# HELP relay_connected_operator_sockets Operator sockets joined on this node.",
    "# TYPE relay_connected_operator_sockets gauge",
    `relay_connected_operator_sockets ${operatorSockets}`,
    "",
  ].join("\n");
}

const httpServer = createServer((req, res) => {
  const url = req.url ?? "/";
  if (req.method === "GET" && isPath(url, "/health")) {
    const body = JSON.stringify({
      status: redisUp ? "ok" : "degraded",
      node: NODE,
      sockets: connectedSockets,
      operators: operators.size,
      operatorSockets,
      clients: clients.size,
    });
    res.writeHead(redisUp ? 200 : 503, { "content-type": "application/json" });
    res.end(body);
    return;
  }
  if (req.method === "GET" && isPath(url, "/metrics")) {
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
    res.end(metrics());
    return;
  }
  res.writeHead(404, { "content-type": "text/plain" });
  res.end("not found");
});

const io = new Server(httpServer, {
  path: PATH,
  serveClient: false,
  maxHttpBufferSize: FRAME_LIMIT,
  pingInterval: PING_INTERVAL_MS,
  pingTimeout: PING_TIMEOUT_MS,
  cors: { origin: ANY_ORIGIN ? true : ORIGINS, credentials: true },
  // CORS alone binds only browsers that honour it, and not WebSocket at all: a page elsewhere
  // is refused at the handshake
  allowRequest: (req, callback) => {
    const origin = req.headers.origin;
    callback(null, ANY_ORIGIN || origin === undefined || ORIGINS.includes(origin));
  },
  adapter: createAdapter(redis, sub, { key: `${PREFIX}-socket.io` }),
});

// Work of every socket not yet done: a stopping node finishes it (its departures reach the
// cluster) before it leaves.
const inFlight = new Set();

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
  const queue = { tail: Promise.resolve(), events: 0, bytes: 0, closed: false };

  // runs `work` once everything queued before it is done
  function enqueue(bytes, work) {
    queue.events += 1;
    queue.bytes += bytes;
    const run = queue.tail
      .then(work)
      .catch((e) => process.stderr.write(`cluster-server: ${sid}: ${e?.stack ?? e}\n`))
      .finally(() => {
        queue.events -= 1;
        queue.bytes -= bytes;
        inFlight.delete(run);
      });
    queue.tail = run;
    inFlight.add(run);
  }

  const answer = (ack, payload) => {
    if (ack) ack(payload);
  };

  const refuse = (event, ack, refusal) => {
    answer(ack, { error: refusal.code });
    socket.emit("relayError", { event, code: refusal.code, message: refusal.message });
    if (refusal.code === "unauthorized") socket.disconnect();
  };

  async function join(data) {
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
      const who = verifyToken(presented, SECRET);
      if (who.error) throw new Refusal("unauthorized", who.error);
      state.role = "operator";
      state.operator = { operatorId: who.operatorId, name: who.name };
      addOperatorHere(who.operatorId, who.name, sid);
      if (await addOperator(who.operatorId, who.name, sid)) {
        // every operator but this one's own tabs, on every node, whichever node they are on
        io.to(OPERATORS).except(operatorRoom(who.operatorId)).emit("operatorConnected", { operatorId: who.operatorId, name: who.name });
      }
      // joined only now, so no tab hears about its own operator arriving; a socket gone
      // meanwhile joins nothing (its queued departure undoes the rest)
      if (!queue.closed) socket.join([OPERATORS, operatorRoom(who.operatorId)]);
      return {};
    }
    if (role === "client") {
      const name = username === undefined ? "" : cleanName(username);
      if (name === "") throw new Refusal("invalid_payload", "a client joins with a non-empty username");
      state.role = "client";
      clients.set(sid, name);
      // in Redis before anyone hears of it, so an operator anywhere may answer at once
      await addClient(sid);
      socket.to(OPERATORS).emit("newChat", { clientId: sid, username: name });
      return {};
    }
    throw new Refusal("invalid_payload", `unknown role ${JSON.stringify(role)}: expected "operator" or "client"`);
  }

  async function operatorMessage(data) {
    const req = object(data);
    const to = field(req, "to", "string", true);
    const body = messageBody(req);
    // accepted for the frontend's sake, never trusted
    field(req, "operatorId", "u64", false);
    field(req, "operatorName", "string", false);
    const content = validateContent(body, IMAGES);
    if (!(await isClient(to))) throw new Refusal("unknown_client", `no connected client ${JSON.stringify(to)}`);
    const id = messageId();
    const { operatorId, name: operatorName } = state.operator;
    const { toClient, broadcast } = operatorDeliveries(content, {
      from: sid,
      to,
      operatorId,
      operatorName,
      messageId: id,
      timestamp: timestamp(),
    });
    io.to(to).emit("incomingOperatorMessage", toClient);
    socket.to(OPERATORS).emit("operatorMessageBroadcast", broadcast);
    return { messageId: id };
  }

  function clientMessage(data) {
    const content = validateContent(messageBody(object(data)), IMAGES);
    const id = messageId();
    socket.to(OPERATORS).emit("incomingMessage", clientDelivery(content, { from: sid, messageId: id, timestamp: timestamp() }));
    return { messageId: id };
  }

  async function operatorTyping(data) {
    const req = object(data);
    const to = field(req, "to", "string", true);
    const isTyping = field(req, "isTyping", "boolean", true);
    if (!(await isClient(to))) throw new Refusal("unknown_client", `no connected client ${JSON.stringify(to)}`);
    io.to(to).emit("operatorTyping", { isTyping });
    return {};
  }

  function clientTyping(data) {
    const isTyping = field(object(data), "isTyping", "boolean", true);
    socket.to(OPERATORS).emit("clientTyping", { from: sid, isTyping });
    return {};
  }

  async function getConnectedOperators() {
    socket.emit("connectedOperatorsList", await operatorList());
    return {};
  }

  const HANDLERS = { join, operatorMessage, clientMessage, operatorTyping, clientTyping, getConnectedOperators };

  // Role, then budget, then size, then shape and content: the reference relay's order. The
  // budgets count from when the event arrived, not from when its turn came.
  async function route(event, args, arrived, size) {
    if (event !== "join") {
      const role = Object.hasOwn(ROLE_OF, event) ? ROLE_OF[event] : undefined;
      if (role === undefined) throw new Refusal("invalid_payload", `unknown event ${JSON.stringify(event)}`);
      if (state.role === null) throw new Refusal("not_joined", "send join first");
      if (state.role !== role) throw new Refusal("forbidden", "this role may not send this event");
    }
    if (MESSAGE_EVENTS.has(event)) {
      // every message a joined socket sends counts, valid or not
      const wait = state.messages.tryAcquire(arrived);
      if (wait !== null) return { retryAfterMs: Math.max(1, Math.floor(wait)) };
    } else if (TYPING_EVENTS.has(event) && state.typing.tryAcquire(arrived) !== null) {
      return { dropped: true }; // over the typing budget: silently
    }
    if (size > MAX_PAYLOAD_BYTES) {
      throw new Refusal("payload_too_large", `event is over the ${MAX_PAYLOAD_BYTES}-byte limit`);
    }
    return { accepted: await HANDLERS[event](args[0]) };
  }

  async function handle(event, args, ack, arrived, size) {
    let outcome;
    try {
      outcome = await route(event, args, arrived, size);
    } catch (e) {
      if (e instanceof Refusal) {
        refuse(event, ack, e);
      } else {
        // not reached unless Redis fails: every handler validates before it delivers anything
        process.stderr.write(`cluster-server: ${event} from ${sid} failed: ${e?.stack ?? e}\n`);
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
  }

  async function leave() {
    const role = state.role;
    state.role = null;
    if (role === "operator") {
      const { operatorId } = state.operator;
      removeOperatorHere(operatorId, sid);
      const name = await removeOperator(operatorId, sid);
      if (name !== null) {
        io.to(OPERATORS).except(operatorRoom(operatorId)).emit("operatorDisconnected", { operatorId, name });
      }
    } else if (role === "client") {
      clients.delete(sid);
      // false when a survivor took this node for dead and announced it already
      if (await removeClient(sid)) io.to(OPERATORS).except(sid).emit("chatEnded", { clientId: sid });
    }
  }

  socket.onAny((rawEvent, ...args) => {
    // dropped once `disconnect` has run: a join now would add presence nothing removes
    if (queue.closed) return;
    const ack = args.length > 0 && typeof args[args.length - 1] === "function" ? args.pop() : undefined;
    const event = String(rawEvent);
    const arrived = performance.now();
    const size = eventSize(event, args);
    // a payload too deep to measure came in one frame, within the frame limit
    const bytes = Number.isFinite(size) ? size : FRAME_LIMIT;
    if (queue.events >= MAX_QUEUED_EVENTS || queue.bytes + bytes > MAX_QUEUED_BYTES) {
      socket.disconnect(true); // a flood: more waiting than this socket may have
      return;
    }
    enqueue(bytes, () => handle(event, args, ack, arrived, size));
  });

  socket.on("disconnect", () => {
    connectedSockets -= 1;
    queue.closed = true;
    // after everything it sent: its messages go out before its departure is announced
    enqueue(0, leave);
  });
});

// ---------------------------------------------------------------- the cluster

let beats = 0;

// Renews this node's heartbeat. Redis that lost it (restarted empty) gets this node's sockets
// back, announcing nothing; a node that survivors took for dead (it stalled past the TTL)
// has had its departures announced, so its sockets are closed (they reconnect as new ones).
async function heartbeat() {
  const [lost, reaped] = await script(HEARTBEAT, [key("alive", NODE), key("nodes"), key("reaped", NODE)], [NODE_TTL_MS, NODE]);
  beats += 1;
  if (reaped === 1) {
    process.stderr.write("cluster-server: this node was taken for dead: closing its sockets\n");
    io.local.disconnectSockets(true);
  } else if (lost === 1 && beats > 1) {
    for (const [operatorId, entry] of operators) {
      for (const sid of entry.sockets) await addOperator(operatorId, entry.name, sid);
    }
    for (const sid of clients.keys()) await addClient(sid);
  }
}

// When this node first saw each other node's heartbeat missing.
const missingSince = new Map();

// Every node whose heartbeat expired is reaped; of the survivors doing this at once, one takes
// each dead node and announces its departures.
async function reap() {
  const nodes = await command("SMEMBERS", key("nodes"));
  const now = Date.now();
  for (const node of nodes) {
    if (node === NODE) continue;
    if ((await command("EXISTS", key("alive", node))) === 1) {
      missingSince.delete(node);
      continue;
    }
    if (!missingSince.has(node)) missingSince.set(node, now);
    // FAULT 2 (late_reap): the dead node's departures wait 17 s more
    if (FAULTS.has("late_reap") && now - missingSince.get(node) < LATE_REAP_WAIT_MS) continue;
    missingSince.delete(node);
    const gone = await script(
      REAP,
      [key("nodes"), key("alive", node), key("node", node), key("ops"), key("clients"), key("reaped", node)],
      [PREFIX, node, REAPED_MARK_MS],
    );
    for (let i = 0; i + 2 < gone.length; i += 3) {
      if (gone[i] === "o") {
        const operatorId = Number(gone[i + 1]);
        io.to(OPERATORS).except(operatorRoom(operatorId)).emit("operatorDisconnected", { operatorId, name: gone[i + 2] });
      } else {
        io.to(OPERATORS).emit("chatEnded", { clientId: gone[i + 1] });
      }
    }
  }
  for (const node of missingSince.keys()) if (!nodes.includes(node)) missingSince.delete(node);
}

// Runs `task` every `ms`, never two at once (a slow Redis delays the next turn instead).
function every(ms, task) {
  let busy = false;
  return setInterval(() => {
    if (busy || stopping) return;
    busy = true;
    task()
      .catch((e) => {
        if (redisUp) process.stderr.write(`cluster-server: ${task.name}: ${e?.message ?? e}\n`);
      })
      .finally(() => {
        busy = false;
      });
  }, ms);
}

// ---------------------------------------------------------------- lifecycle

let stopping = false;
let timers = [];

// The node leaves the cluster: its sockets' departures announced, then its heartbeat and its
// entry removed, so survivors have nothing to reap.
async function stop() {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(0), 3000).unref();
  for (const t of timers) clearInterval(t);
  io.close();
  while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
  try {
    await command("DEL", key("alive", NODE), key("node", NODE));
    await command("SREM", key("nodes"), NODE);
  } catch {
    // Redis is gone: survivors, if any, reap this node
  }
  await Promise.allSettled([redis.close(), sub.close()]);
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

async function start() {
  const connected = Promise.all([redis.connect(), sub.connect()]);
  const timeout = new Promise((_, reject) => {
    setTimeout(() => reject(new Error(`no answer within ${REDIS_CONNECT_MS} ms`)), REDIS_CONNECT_MS).unref();
  });
  try {
    await Promise.race([connected, timeout]);
  } catch (e) {
    fail(`cannot reach Redis at ${REDIS_URL} (REDIS_URL): ${e.message}`);
  }
  redisUp = true;
  // the adapter subscribed on `sub` when the namespace was made; a subscription of this
  // node's own, confirmed after those (one connection answers in order), proves them active
  await sub.subscribe(key("hello", NODE), () => {});
  await heartbeat();
  timers = [every(HEARTBEAT_MS, heartbeat), every(REAP_EVERY_MS, reap)];
  httpServer.on("error", (e) => fail(`cannot listen: ${e.message}`));
  httpServer.listen(PORT, HOST, () => {
    process.stdout.write(`listening ${httpServer.address().port}\n`);
  });
}

start();
