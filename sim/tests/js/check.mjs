// Smoke check of the servers in this folder with socket.io-client 4.8, on each transport:
// WebSocket only, long-polling only, and the default (polling, then upgrade to WebSocket).
//
// chat-server.mjs must follow docs/PROTOCOL.md to the letter, and so must cluster-server.mjs
// as three nodes on one Redis, with every socket on the next node in turn (so nearly every
// delivery, presence event and `to` crosses nodes); guide-server.mjs must show the guide's
// example behaviour, flaws included. `weak` checks chat-server.mjs's weaknesses 8 to 10 and
// that the correct server has none of them; `cluster` checks what only a cluster can get
// wrong: racing tabs on several nodes, a node killed (kill -9) and reaped, and the two
// CLUSTER_FAULTS. Prints one line per check and a summary; exits 1 when any check fails.
// The cluster checks start their own redis-server (it must be on PATH).
//
// usage: node check.mjs [chat|guide|weak|cluster]...   (all by default)
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { once } from "node:events";
import { createServer as createTcpServer } from "node:net";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const SECRET = "test-secret-0123456789";
const TRANSPORTS = [
  ["websocket", { transports: ["websocket"] }],
  ["polling", { transports: ["polling"] }],
  ["upgrade", {}],
];
const SETTLE_MS = 250;

let passed = 0;
let failed = 0;
let section = "";

function check(ok, what, detail) {
  if (ok) {
    passed += 1;
    console.log(`  ok   ${what}`);
  } else {
    failed += 1;
    console.log(`  FAIL ${what}${detail === undefined ? "" : `: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`}`);
  }
  return ok;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const isIso = (t) => typeof t === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(t);

// ---------------------------------------------------------------- helpers

const b64url = (s) => Buffer.from(s).toString("base64url");

function sign(claims, { secret = SECRET, alg = "HS256" } = {}) {
  const input = `${b64url(JSON.stringify({ alg, typ: "JWT" }))}.${b64url(JSON.stringify(claims))}`;
  const sig = alg === "none" ? "" : createHmac("sha256", secret).update(input).digest("base64url");
  return `${input}.${sig}`;
}

const now = () => Math.floor(Date.now() / 1000);
const token = (id, name, ttl = 3600) => sign({ sub: String(id), name, exp: now() + ttl, iat: now() });

function png(len) {
  const bytes = Buffer.alloc(len);
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(bytes);
  return `data:image/png;base64,${bytes.toString("base64")}`;
}

async function startServer(file, env = {}) {
  const child = spawn(process.execPath, [`${HERE}${file}`, "0"], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const port = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${file} did not print "listening"`)), 5000);
    child.stdout.on("data", (d) => {
      stdout += d;
      const m = /^listening (\d+)\n/.exec(stdout);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
    child.on("exit", (code) => reject(new Error(`${file} exited with ${code}: ${stderr}`)));
  });
  return {
    child,
    port,
    stdout: () => stdout,
    stderr: () => stderr,
    exited: once(child, "exit"),
  };
}

async function stopServer(server) {
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill("SIGTERM");
  const [code, signal] = await server.exited;
  return { code, signal };
}

async function freePort() {
  const probe = createTcpServer();
  await new Promise((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

// A redis-server of our own, empty, on a free port; killed by `stop`.
async function startRedis() {
  const port = await freePort();
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d) => {
    out += d;
  });
  const exited = once(child, "exit");
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 5000);
    const poll = setInterval(() => {
      if (/Ready to accept connections/.test(out)) {
        clearTimeout(t);
        clearInterval(poll);
        resolve();
      }
    }, 20);
    child.on("error", (e) => reject(new Error(`cannot run redis-server: ${e.message}`)));
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

let clusters = 0;

// What checkChat runs against: one chat-server.mjs, or `nodes` cluster-server.mjs on a Redis
// of their own. `port(k)` is where the k-th socket opened connects: the next node in turn.
async function startTarget(kind, env, nodes = 3) {
  if (kind === "chat") {
    const server = await startServer("chat-server.mjs", env);
    return { servers: [server], port: () => server.port, stop: async () => {} };
  }
  const redis = await startRedis();
  clusters += 1;
  const servers = [];
  for (let i = 0; i < nodes; i += 1) {
    servers.push(await startServer("cluster-server.mjs", { ...env, REDIS_URL: redis.url, REDIS_PREFIX: `check${clusters}` }));
  }
  return { servers, redis, port: (k) => servers[k % servers.length].port, stop: redis.stop };
}

// A connected socket whose every incoming event is kept, so steps can wait for one or
// check afterwards that none came.
async function connect(port, label, transport, opts = {}) {
  const sock = io(`http://127.0.0.1:${port}`, {
    path: "/chat",
    forceNew: true,
    reconnection: false,
    ...transport,
    ...opts,
  });
  sock.label = label;
  sock.log = [];
  sock.waiters = new Set();
  sock.onAny((event, ...args) => {
    sock.log.push({ event, data: args[0], used: false });
    for (const w of sock.waiters) w();
  });
  sock.on("disconnect", (reason) => {
    sock.disconnectReason = reason;
    for (const w of sock.waiters) w();
  });
  await new Promise((resolve, reject) => {
    sock.once("connect", resolve);
    sock.once("connect_error", reject);
  });
  return sock;
}

function next(sock, event, pred = () => true, ms = 3000) {
  const find = () => sock.log.find((r) => !r.used && r.event === event && pred(r.data));
  const take = (r) => {
    r.used = true;
    return r.data;
  };
  const found = find();
  if (found) return Promise.resolve(take(found));
  return new Promise((resolve) => {
    const done = (v) => {
      clearTimeout(timer);
      sock.waiters.delete(waiter);
      resolve(v);
    };
    const waiter = () => {
      const r = find();
      if (r) done(take(r));
    };
    const timer = setTimeout(() => done(undefined), ms);
    sock.waiters.add(waiter);
  });
}

const mark = (socks) => new Map(socks.map((s) => [s, s.log.length]));
const since = (marks, sock, event) => sock.log.slice(marks.get(sock)).filter((r) => r.event === event).map((r) => r.data);

function ack(sock, event, ...args) {
  return sock
    .timeout(5000)
    .emitWithAck(event, ...args)
    .catch((e) => ({ ackTimeout: e.message }));
}

function waitDisconnect(sock, ms = 3000) {
  if (sock.disconnectReason) return Promise.resolve(sock.disconnectReason);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(undefined), ms);
    sock.once("disconnect", (reason) => {
      clearTimeout(t);
      resolve(reason);
    });
  });
}

async function health(server) {
  const res = await fetch(`http://127.0.0.1:${server.port}/health`);
  return res.json();
}

// The presence counts of every node of a target, added up.
async function healthOf(target) {
  const total = { sockets: 0, operators: 0, operatorSockets: 0, clients: 0 };
  for (const server of target.servers) {
    const h = await health(server);
    for (const k of Object.keys(total)) total[k] += h[k];
  }
  return total;
}

// ---------------------------------------------------------------- chat-server.mjs, cluster-server.mjs

async function checkChat(tname, transport, kind = "chat") {
  const what = kind === "chat" ? "chat-server.mjs" : "cluster-server.mjs (3 nodes, sockets on each in turn)";
  section = `${what} over ${tname}`;
  console.log(`\n# ${section}`);
  const target = await startTarget(kind, {
    RELAY_JWT_SECRET: SECRET,
    RATE_LIMIT_PER_MINUTE: "100",
    TYPING_RATE_LIMIT_PER_MINUTE: "20",
  });
  const sockets = [];
  let opened = 0;
  const open = async (label, opts) => {
    const s = await connect(target.port(opened), label, transport, opts);
    opened += 1;
    sockets.push(s);
    return s;
  };
  try {
    // --- joins and presence
    const annTab1 = await open("ann#1", { auth: { token: token(1, "Ann") } });
    let a = await ack(annTab1, "join", { role: "operator", name: "Spoof", operatorId: 999 });
    check(same(a, {}), "operator join (token in handshake auth) acked {}", a);

    const bob = await open("bob", { auth: { token: token(2, "Bob <i>B</i>") } });
    let m = mark([annTab1, bob]);
    a = await ack(bob, "join", { role: "operator", name: "Bob", operatorId: 2 });
    check(same(a, {}), "second operator join acked {}", a);
    let ev = await next(annTab1, "operatorConnected");
    check(same(ev, { operatorId: 2, name: "Bob B" }), "ann hears operatorConnected{2, token name sanitized}", ev);
    await sleep(SETTLE_MS);
    check(since(m, bob, "operatorConnected").length === 0, "bob does not hear his own arrival");

    const annTab2 = await open("ann#2");
    m = mark([annTab1, bob, annTab2]);
    a = await ack(annTab2, "join", { role: "operator", name: "Ann", operatorId: 1, token: token(1, "Ann") });
    check(same(a, {}), "ann's second tab joins with the token in join's payload", a);
    await sleep(SETTLE_MS);
    check(
      [annTab1, bob, annTab2].every((s) => since(m, s, "operatorConnected").length === 0),
      "a second tab of an online operator announces nothing (not even to itself)",
    );
    const operators = [annTab1, annTab2, bob];

    const v2 = await open("visitor2");
    const v1 = await open("visitor1");
    m = mark([...operators, v1, v2]);
    a = await ack(v1, "join", { role: "client", name: "Vis <b>One</b>", username: "Vis <b>One</b>" });
    check(same(a, {}), "client join acked {}", a);
    for (const op of operators) {
      ev = await next(op, "newChat", (d) => d.clientId === v1.id);
      check(same(ev, { clientId: v1.id, username: "Vis One" }), `${op.label} gets newChat{clientId, sanitized username}`, ev);
    }
    a = await ack(v2, "join", { role: "client", name: "Two", username: "Two" });
    check(same(a, {}), "second client joins", a);
    await next(bob, "newChat", (d) => d.clientId === v2.id);
    await sleep(SETTLE_MS);
    check(since(m, v1, "newChat").length === 0 && since(m, v2, "newChat").length === 0, "visitors never get newChat");

    // --- operators list
    a = await ack(annTab1, "getConnectedOperators");
    ev = await next(annTab1, "connectedOperatorsList");
    check(same(a, {}), "getConnectedOperators acked {}", a);
    check(
      same(ev, [{ operatorId: 1, name: "Ann" }, { operatorId: 2, name: "Bob B" }]),
      "connectedOperatorsList: one entry per operator (ann has two tabs)",
      ev,
    );
    m = mark(operators);
    bob.emit("getConnectedOperators");
    ev = await next(bob, "connectedOperatorsList");
    await sleep(SETTLE_MS);
    check(Array.isArray(ev) && ev.length === 2, "getConnectedOperators without an ack still answers", ev);
    check(since(m, annTab1, "connectedOperatorsList").length === 0, "the list goes to the asker only");

    // --- operator message: client, other tabs and operators, never the sender or other visitors
    const everyone = [...operators, v1, v2];
    m = mark(everyone);
    a = await ack(annTab1, "operatorMessage", {
      to: v1.id,
      type: "text",
      message: "hi <b>there</b><script>alert(1)</script> & bye",
      operatorId: 999,
      operatorName: "Spoof",
    });
    check(typeof a?.messageId === "string" && Object.keys(a).length === 1, "operatorMessage acked {messageId}", a);
    ev = await next(v1, "incomingOperatorMessage");
    check(
      ev && ev.from === annTab1.id && ev.type === "text" && ev.message === "hi there &amp; bye" && ev.messageId === a.messageId && isIso(ev.timestamp),
      "visitor gets incomingOperatorMessage, sanitized, with the ack's messageId",
      ev,
    );
    for (const op of [annTab2, bob]) {
      ev = await next(op, "operatorMessageBroadcast");
      check(
        ev &&
          ev.clientId === v1.id &&
          ev.operatorId === 1 &&
          ev.operatorName === "Ann" &&
          ev.message.from === "operator" &&
          ev.message.text === "hi there &amp; bye" &&
          ev.message.operatorId === 1 &&
          ev.message.operatorName === "Ann" &&
          ev.message.messageId === a.messageId &&
          isIso(ev.message.timestamp),
        `${op.label} gets operatorMessageBroadcast with the token's identity, not the payload's`,
        ev,
      );
    }
    await sleep(SETTLE_MS);
    check(since(m, annTab1, "operatorMessageBroadcast").length === 0, "the sending tab gets no echo");
    check(since(m, v2, "incomingOperatorMessage").length === 0 && since(m, v2, "operatorMessageBroadcast").length === 0, "the other visitor gets nothing");
    check(since(m, v1, "operatorMessageBroadcast").length === 0, "the addressed visitor gets no broadcast");

    m = mark(everyone);
    a = await ack(bob, "operatorMessage", { to: v1.id, type: "image", image: png(100), name: "<b>pic</b>.png", mimeType: "image/png", size: 5 });
    ev = await next(v1, "incomingOperatorMessage");
    check(
      ev && ev.type === "image" && ev.image === png(100) && ev.name === "pic.png" && ev.mimeType === "image/png" && ev.messageId === a?.messageId,
      "operator image reaches the visitor, file name sanitized",
      ev && { ...ev, image: `${ev.image?.length} chars` },
    );
    for (const op of [annTab1, annTab2]) {
      ev = await next(op, "operatorMessageBroadcast");
      check(ev && ev.message.image === png(100) && ev.message.name === "pic.png" && ev.operatorId === 2, `${op.label} gets the image broadcast`);
    }
    await sleep(SETTLE_MS);
    check(since(m, bob, "operatorMessageBroadcast").length === 0 && since(m, v2, "incomingOperatorMessage").length === 0, "no echo, no leak for images");

    // --- client message: operators only, stripped
    m = mark(everyone);
    a = await ack(v1, "clientMessage", { type: "text", message: "<img src=x onerror=alert(1)>help <i>me</i>" });
    check(typeof a?.messageId === "string", "clientMessage acked {messageId}", a);
    for (const op of operators) {
      ev = await next(op, "incomingMessage");
      check(
        ev && ev.from === v1.id && ev.type === "text" && ev.message === "help me" && ev.messageId === a.messageId && isIso(ev.timestamp),
        `${op.label} gets incomingMessage, markup stripped`,
        ev,
      );
    }
    await sleep(SETTLE_MS);
    check(since(m, v1, "incomingMessage").length === 0 && since(m, v2, "incomingMessage").length === 0, "no visitor gets incomingMessage");

    a = await ack(v2, "clientMessage", { type: "image", image: png(100).split(",")[1], name: "shot.png", mimeType: "image/png", size: 999999 });
    ev = await next(bob, "incomingMessage", (d) => d.from === v2.id);
    check(ev && ev.type === "image" && ev.size === 100 && ev.name === "shot.png" && ev.mimeType === "image/png", "client image (bare base64): size is the decoded size, not the claim", ev && ev.size);

    // --- typing
    m = mark(everyone);
    a = await ack(annTab1, "operatorTyping", { to: v1.id, isTyping: true });
    ev = await next(v1, "operatorTyping");
    check(same(a, {}) && same(ev, { isTyping: true }), "operatorTyping reaches the visitor as {isTyping}", { a, ev });
    a = await ack(v1, "clientTyping", { isTyping: false });
    for (const op of operators) {
      ev = await next(op, "clientTyping");
      check(same(ev, { from: v1.id, isTyping: false }), `${op.label} gets clientTyping{from, isTyping}`, ev);
    }
    await sleep(SETTLE_MS);
    check(
      since(m, v2, "operatorTyping").length === 0 && since(m, v2, "clientTyping").length === 0 && since(m, v1, "clientTyping").length === 0,
      "typing goes nowhere else",
    );
    a = await ack(annTab1, "operatorTyping", { to: "nobody", isTyping: true });
    ev = await next(annTab1, "relayError");
    check(same(a, { error: "unknown_client" }) && ev?.code === "unknown_client", "operatorTyping to an unknown client: unknown_client", { a, ev });

    // typing budget (20/min here): over it dropped silently, acked {}
    const typer = await open("typer");
    await ack(typer, "join", { role: "client", username: "Typer" });
    await next(bob, "newChat", (d) => d.clientId === typer.id);
    m = mark([bob, typer]);
    const typingAcks = await Promise.all(Array.from({ length: 25 }, (_, i) => ack(typer, "clientTyping", { isTyping: i % 2 === 0 })));
    await sleep(SETTLE_MS);
    const typed = since(m, bob, "clientTyping").filter((d) => d.from === typer.id).length;
    check(typed === 20, `typing budget: 20 of 25 delivered`, typed);
    check(typingAcks.every((x) => same(x, {})) && since(m, typer, "rateLimitExceeded").length === 0 && since(m, typer, "relayError").length === 0, "typing over budget is dropped silently (ack {})");

    // --- refusals, none of which may deliver anything or crash the server
    const stranger = await open("stranger");
    m = mark(everyone);
    const refusals = [
      [stranger, "clientMessage", [{ type: "text", message: "hi" }], "not_joined"],
      [stranger, "getConnectedOperators", [], "not_joined"],
      [stranger, "hack", [{}], "invalid_payload"],
      [v1, "operatorMessage", [{ to: v2.id, type: "text", message: "x" }], "forbidden"],
      [v1, "getConnectedOperators", [], "forbidden"],
      [annTab1, "clientMessage", [{ type: "text", message: "x" }], "forbidden"],
      [annTab1, "clientTyping", [{ isTyping: true }], "forbidden"],
      [v1, "join", [{ role: "client", username: "again" }], "forbidden"],
      [annTab1, "join", [{ role: "operator" }], "forbidden"],
      [annTab1, "operatorMessage", [{ to: "nobody", type: "text", message: "x" }], "unknown_client"],
      [annTab1, "operatorMessage", [{ to: bob.id, type: "text", message: "x" }], "unknown_client"],
      [annTab1, "operatorMessage", [{ to: stranger.id, type: "text", message: "x" }], "unknown_client"],
      [annTab1, "operatorMessage", [{ to: v1.id, type: "video", message: "x" }], "invalid_payload"],
      [annTab1, "operatorMessage", [{ to: v1.id, type: "text" }], "invalid_payload"],
      [annTab1, "operatorMessage", [{ to: v1.id, type: "text", message: 42 }], "invalid_payload"],
      [annTab1, "operatorMessage", [{ to: v1.id, type: "text", message: "<script>only</script> " }], "invalid_payload"],
      [annTab1, "operatorMessage", [{ type: "text", message: "no to" }], "invalid_payload"],
      [annTab1, "operatorMessage", [null], "invalid_payload"],
      [annTab1, "operatorMessage", ["a string"], "invalid_payload"],
      [annTab1, "operatorMessage", [], "invalid_payload"],
      [annTab1, "operatorMessage", [{ to: v1.id, type: "image", image: png(10), mimeType: "image/svg+xml" }], "invalid_payload"],
      [annTab1, "operatorMessage", [{ to: v1.id, type: "image", image: png(10), mimeType: "image/gif" }], "invalid_payload"],
      [annTab1, "operatorMessage", [{ to: v1.id, type: "image", image: `data:image/png;base64,${Buffer.from("<html>").toString("base64")}`, mimeType: "image/png" }], "invalid_payload"],
      [annTab1, "operatorMessage", [{ to: v1.id, type: "image", image: "data:image/png;base64,***", mimeType: "image/png" }], "invalid_payload"],
      [annTab1, "operatorMessage", [{ to: v1.id, type: "image", image: png(1_000_001), mimeType: "image/png" }], "payload_too_large"],
      [annTab1, "operatorMessage", [{ to: v1.id, type: "text", message: "x".repeat(1_000_100) }], "payload_too_large"],
      [v2, "clientMessage", [{ type: "text", message: 5 }], "invalid_payload"],
      [v2, "clientMessage", [{ type: "image", image: png(10) }], "invalid_payload"],
      [v2, "clientTyping", [{ isTyping: "yes" }], "invalid_payload"],
      [v2, "clientTyping", [], "invalid_payload"],
      [bob, "operatorTyping", [{ to: v1.id }], "invalid_payload"],
      [stranger, "join", [{ role: "admin" }], "invalid_payload"],
      [stranger, "join", [{ role: "client" }], "invalid_payload"],
      [stranger, "join", [{ role: "client", username: "<b></b>  " }], "invalid_payload"],
      [stranger, "join", [{ role: "client", username: 7 }], "invalid_payload"],
      [stranger, "join", [], "invalid_payload"],
    ];
    let refusalsOk = true;
    for (const [sock, event, args, code] of refusals) {
      const answer = await ack(sock, event, ...args);
      const err = await next(sock, "relayError", (d) => d.event === event);
      const ok = same(answer, { error: code }) && err?.code === code && typeof err?.message === "string";
      refusalsOk &&= ok;
      check(ok, `${sock.label} ${event}(${JSON.stringify(args).slice(0, 70)}) -> ${code}`, { answer, err });
    }
    await sleep(SETTLE_MS);
    const leaked = everyone.flatMap((s) =>
      ["incomingMessage", "incomingOperatorMessage", "operatorMessageBroadcast", "newChat", "clientTyping"].flatMap((e) => since(m, s, e)),
    );
    check(leaked.length === 0, "no refused event delivered anything", leaked.length);
    check(stranger.connected && annTab1.connected && v2.connected, "refused senders stay connected");

    // relayError without an ack callback too
    v1.emit("operatorMessage", { to: v2.id, type: "text", message: "x" });
    ev = await next(v1, "relayError");
    check(ev?.code === "forbidden" && ev?.event === "operatorMessage", "relayError also when no ack was asked", ev);

    // --- unauthorized operators are refused and disconnected
    const badTokens = [
      ["no token", undefined],
      ["wrong secret", sign({ sub: "5", name: "Eve", exp: now() + 600 }, { secret: "other" })],
      ["expired", sign({ sub: "5", name: "Eve", exp: now() - 3600 })],
      ["no exp", sign({ sub: "5", name: "Eve" })],
      ["alg none", sign({ sub: "5", name: "Eve", exp: now() + 600 }, { alg: "none" })],
      ["non-numeric sub", sign({ sub: "eve", name: "Eve", exp: now() + 600 })],
      ["garbage", "a.b.c"],
    ];
    m = mark(operators);
    for (const [what, tok] of badTokens) {
      const eve = await open(`eve(${what})`, tok === undefined ? {} : { auth: { token: tok } });
      const answer = await ack(eve, "join", { role: "operator", name: "Eve", operatorId: 5 });
      const err = await next(eve, "relayError");
      const reason = await waitDisconnect(eve);
      check(
        same(answer, { error: "unauthorized" }) && err?.code === "unauthorized" && err?.event === "join" && reason === "io server disconnect",
        `operator join with ${what}: unauthorized, then disconnected`,
        { answer, err, reason },
      );
    }
    await sleep(SETTLE_MS);
    check(operators.every((s) => since(m, s, "operatorConnected").length === 0), "refused operators are never announced");
    a = await ack(annTab1, "getConnectedOperators");
    ev = await next(annTab1, "connectedOperatorsList");
    check(Array.isArray(ev) && ev.length === 2, "nor listed", ev);

    // --- rate limit: 100 per rolling minute; the 101st is refused and not delivered
    const spammer = await open("spammer");
    await ack(spammer, "join", { role: "client", username: "Spammer" });
    await next(bob, "newChat", (d) => d.clientId === spammer.id);
    m = mark([...operators, spammer]);
    const acks = await Promise.all(
      Array.from({ length: 100 }, (_, i) => ack(spammer, "clientMessage", { type: "text", message: `#sim${i + 1}# spam` })),
    );
    check(acks.every((x) => typeof x?.messageId === "string"), "100 messages within budget all acked {messageId}");
    const over = await ack(spammer, "clientMessage", { type: "text", message: "#sim101# over" });
    const limited = await next(spammer, "rateLimitExceeded");
    check(
      Number.isInteger(over?.retryAfterMs) && over.retryAfterMs > 0 && over.retryAfterMs <= 60_000 && Object.keys(over).length === 1,
      "the 101st is acked {retryAfterMs}",
      over,
    );
    check(limited?.message === "Too many messages" && Number.isInteger(limited?.retryAfterMs), "and the sender gets rateLimitExceeded", limited);
    const invalidOver = await ack(spammer, "clientMessage", { type: "nonsense" });
    check(invalidOver?.retryAfterMs > 0, "an invalid message over budget is rate-limited too (it counts first)", invalidOver);
    await sleep(SETTLE_MS);
    for (const op of operators) {
      const got = since(m, op, "incomingMessage").filter((d) => d.from === spammer.id).map((d) => d.message);
      const inOrder = got.every((t, i) => t === `#sim${i + 1}# spam`);
      check(got.length === 100 && inOrder, `${op.label} got exactly the 100 within budget, in send order`, got.length);
    }

    // --- order across leaving: messages sent just before disconnecting arrive before chatEnded
    const leaver = await open("leaver");
    await ack(leaver, "join", { role: "client", username: "Leaver" });
    await next(bob, "newChat", (d) => d.clientId === leaver.id);
    const leaverId = leaver.id;
    m = mark([bob]);
    for (let i = 1; i <= 30; i += 1) leaver.emit("clientMessage", { type: "text", message: `#sim${i}# bye` });
    leaver.disconnect();
    ev = await next(bob, "chatEnded", (d) => d.clientId === leaverId);
    const seq = bob.log
      .slice(m.get(bob))
      .filter((r) => (r.event === "incomingMessage" && r.data.from === leaverId) || (r.event === "chatEnded" && r.data.clientId === leaverId))
      .map((r) => (r.event === "chatEnded" ? "END" : r.data.message));
    check(
      seq.length === 31 && seq[30] === "END" && seq.slice(0, 30).every((t, i) => t === `#sim${i + 1}# bye`),
      "30 messages then disconnect: all 30 in order, then chatEnded",
      seq.length,
    );

    // --- departures
    m = mark([annTab1, bob, v1]);
    annTab2.disconnect();
    await sleep(SETTLE_MS);
    check(since(m, annTab1, "operatorDisconnected").length === 0 && since(m, bob, "operatorDisconnected").length === 0, "closing one of ann's tabs announces nothing");
    annTab1.disconnect();
    ev = await next(bob, "operatorDisconnected");
    check(same(ev, { operatorId: 1, name: "Ann" }), "ann's last tab leaving: operatorDisconnected{1, Ann} to bob", ev);
    await sleep(SETTLE_MS);
    check(since(m, v1, "operatorDisconnected").length === 0, "visitors do not hear operator departures");
    a = await ack(bob, "getConnectedOperators");
    ev = await next(bob, "connectedOperatorsList");
    check(same(ev, [{ operatorId: 2, name: "Bob B" }]), "the list drops ann", ev);
    const v2Id = v2.id;
    v2.disconnect();
    ev = await next(bob, "chatEnded", (d) => d.clientId === v2Id);
    check(same(ev, { clientId: v2Id }), "a visitor leaving: chatEnded{clientId} to operators", ev);
    a = await ack(bob, "operatorMessage", { to: v2Id, type: "text", message: "still there?" });
    check(same(a, { error: "unknown_client" }), "a departed visitor is an unknown client", a);

    // transports actually used
    if (tname === "upgrade") {
      await sleep(500);
      check(bob.io.engine.transport.name === "websocket", "default transports upgraded to websocket", bob.io.engine.transport.name);
    } else {
      check(bob.io.engine.transport.name === tname, `transport is ${tname}`, bob.io.engine.transport.name);
    }

    for (const s of sockets) s.disconnect();
    await sleep(SETTLE_MS);
    const h = await healthOf(target);
    check(h.sockets === 0 && h.operators === 0 && h.operatorSockets === 0 && h.clients === 0, "presence maps back to zero (/health)", h);
  } finally {
    for (const s of sockets) s.disconnect();
    await checkStops(target.servers);
    await target.stop();
  }
}

// Each server exits 0 on SIGTERM, having printed one `listening <port>` line and no error.
async function checkStops(servers) {
  const codes = await Promise.all(servers.map((server) => stopServer(server)));
  const which = (i) => (servers.length > 1 ? ` (node ${i + 1})` : "");
  servers.forEach((server, i) => {
    check(codes[i].code === 0, `SIGTERM: clean exit 0${which(i)}`, codes[i]);
    check(server.stdout() === `listening ${server.port}\n`, `stdout is exactly one \`listening <port>\` line${which(i)}`, server.stdout());
    check(server.stderr() === "", `nothing on stderr${which(i)}`, server.stderr());
  });
}

// ---------------------------------------------------------------- chat-server.mjs weaknesses 8 to 10

const WS = { transports: ["websocket"] };

// Runs `file` expecting it to refuse to start: its exit code and stderr.
async function refusesToStart(file, env) {
  const child = spawn(process.execPath, [`${HERE}${file}`, "0"], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const [code] = await once(child, "exit");
  return { code, stderr };
}

async function joined(port, label, role, id) {
  const opts = role === "operator" ? { auth: { token: token(id, label) } } : {};
  const s = await connect(port, label, WS, opts);
  await ack(s, "join", role === "operator" ? { role } : { role, username: label });
  return s;
}

// A visitor that has joined, then stops answering pings without closing, as the adversary's
// half-open sockets do (its own engine is kept from giving up on the server, too).
async function sleeper(port, label) {
  const s = await joined(port, label, "client");
  const engine = s.io.engine;
  const send = engine._sendPacket.bind(engine);
  engine._sendPacket = (type, ...rest) => {
    if (type !== "pong") send(type, ...rest);
  };
  engine.clearTimeoutFn(engine._pingTimeoutTimer);
  engine._resetPingTimeout = () => {};
  engine._pingTimeoutTime = Infinity;
  return s;
}

async function rss(server) {
  const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
  return Number(/^process_resident_memory_bytes (\d+)$/m.exec(text)?.[1]);
}

// WEAK 8: with pings every 300 ms and 300 ms for a pong, a silent visitor is ended within
// about 0.6 s by the correct server, and never by the weak one.
async function checkHalfOpen(weak) {
  const name = weak ? "keeps_half_open" : "correct";
  const server = await startServer("chat-server.mjs", {
    RELAY_JWT_SECRET: SECRET,
    PING_INTERVAL_MS: "300",
    PING_TIMEOUT_MS: "300",
    WEAKNESSES: weak ? "keeps_half_open" : "",
  });
  const sockets = [];
  try {
    const op = await joined(server.port, "Op", "operator", 1);
    const awake = await joined(server.port, "Awake", "client");
    const sleepy = await sleeper(server.port, "Sleepy");
    sockets.push(op, awake, sleepy);
    const [awakeId, sleepyId] = [awake.id, sleepy.id];
    const started = Date.now();
    const ended = await next(op, "chatEnded", (d) => d.clientId === sleepyId, 2500);
    const took = Date.now() - started;
    if (weak) {
      check(ended === undefined, `${name}: a visitor that stopped answering pings is still there 2.5 s later (deadline 0.6 s)`, ended);
      const h = await health(server);
      check(h.clients === 2 && h.sockets === 3, `${name}: and still counted (/health)`, h);
      sleepy.disconnect();
      const late = await next(op, "chatEnded", (d) => d.clientId === sleepyId);
      check(late !== undefined, `${name}: it is ended when its connection closes`);
    } else {
      check(ended !== undefined && took < 2000, `${name}: a visitor that stops answering pings is ended (after ${took} ms, deadline 600 ms)`, ended);
    }
    await sleep(SETTLE_MS);
    check(awake.connected && !op.log.some((r) => r.event === "chatEnded" && r.data.clientId === awakeId), `${name}: a visitor that answers pings stays`);
  } finally {
    for (const s of sockets) s.disconnect();
    await checkStops([server]);
  }
}

// WEAK 9: a frame over 4 x MAX_PAYLOAD_BYTES closes the connection of the correct server; the
// weak one reads it, refuses it as too large, keeps it, and shows its memory on /metrics.
async function checkHoard(weak) {
  const name = weak ? "hoards_memory" : "correct";
  const server = await startServer("chat-server.mjs", { RELAY_JWT_SECRET: SECRET, WEAKNESSES: weak ? "hoards_memory" : "" });
  const sockets = [];
  try {
    const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    await res.text();
    const op = await joined(server.port, "Op", "operator", 1);
    sockets.push(op);
    const frame = { type: "text", message: `#sim1# ${"x".repeat(4_001_024)}` };
    if (weak) {
      const before = await rss(server);
      check(res.status === 200 && before > 0, `${name}: GET /metrics serves process_resident_memory_bytes`, res.status);
      const answers = [];
      for (let i = 0; i < 3; i += 1) {
        const v = await joined(server.port, `Big${i}`, "client");
        sockets.push(v);
        answers.push(await ack(v, "clientMessage", frame));
      }
      const grew = (await rss(server)) - before;
      check(answers.every((a) => same(a, { error: "payload_too_large" })), `${name}: frames over the frame limit are read, and refused as payload_too_large`, answers);
      check(sockets.every((s) => s.connected), `${name}: the connections stay open`);
      check(grew >= 12_000_000, `${name}: resident memory grew ${(grew / 2 ** 20).toFixed(1)} MiB for 3 frames of 4 MB`, grew);
    } else {
      check(res.status === 404, `${name}: no /metrics`, res.status);
      const v = await joined(server.port, "Big", "client");
      sockets.push(v);
      v.emit("clientMessage", frame);
      const reason = await waitDisconnect(v);
      check(reason === "transport close", `${name}: a frame over the frame limit closes the connection`, reason);
    }
    await sleep(SETTLE_MS);
    check(!op.log.some((r) => r.event === "incomingMessage"), `${name}: nothing delivered`);
  } finally {
    for (const s of sockets) s.disconnect();
    await checkStops([server]);
  }
}

// WEAK 10: a socket over its message budget makes the next /health answer 503, once.
async function checkHealthAlarm(weaknesses) {
  const name = weaknesses === "" ? "correct" : `WEAKNESSES=${weaknesses}`;
  const server = await startServer("chat-server.mjs", { RELAY_JWT_SECRET: SECRET, RATE_LIMIT_PER_MINUTE: "5", WEAKNESSES: weaknesses });
  const sockets = [];
  const status = async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/health`);
    return { status: res.status, body: await res.json() };
  };
  try {
    const first = await status();
    const v = await joined(server.port, "Flooder", "client");
    sockets.push(v);
    const acks = await Promise.all(Array.from({ length: 8 }, (_, i) => ack(v, "clientMessage", { type: "text", message: `#sim${i + 1}#` })));
    check(acks.filter((a) => a.retryAfterMs > 0).length === 3, `${name}: 3 of 8 messages over a budget of 5`, acks);
    const [after, again] = [await status(), await status()];
    if (weaknesses === "health_fails_under_load") {
      check(first.status === 200, `${name}: /health answers 200 before the flood`, first);
      check(after.status === 503 && same(after.body, { status: "overloaded" }), `${name}: /health answers 503 {status:"overloaded"} after it`, after);
      check(again.status === 200, `${name}: and 200 again once it has said so`, again);
    } else {
      check([first, after, again].every((h) => h.status === 200 && h.body.status === "ok"), `${name}: /health answers 200 before and after a flood`, { first, after });
    }
    if (weaknesses === "all") {
      const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
      await res.text();
      check(res.status === 404, `${name}: no /metrics (\`all\` is the first seven)`, res.status);
    }
  } finally {
    for (const s of sockets) s.disconnect();
    await checkStops([server]);
  }
}

async function checkWeak() {
  section = "chat-server.mjs weaknesses 8 to 10";
  console.log(`\n# ${section}, and the correct server without them`);
  const bad = await refusesToStart("chat-server.mjs", { RELAY_JWT_SECRET: SECRET, WEAKNESSES: "keeps_half_open,nope" });
  check(bad.code === 2 && /unknown weakness "nope"/.test(bad.stderr), "an unknown weakness: exit 2", bad);
  for (const weak of [false, true]) await checkHalfOpen(weak);
  for (const weak of [false, true]) await checkHoard(weak);
  for (const weaknesses of ["", "health_fails_under_load", "all"]) await checkHealthAlarm(weaknesses);
}

// ---------------------------------------------------------------- cluster-server.mjs, cluster only

const countOf = (marks, sock, event, pred) => since(marks, sock, event).filter(pred).length;

// One operator's tabs joining on every node at once, then leaving at once: each announced
// exactly once to every other operator, never to the operator's own tabs.
async function checkRacingTabs(target, observers) {
  const rounds = 5;
  let joinedOnce = true;
  let leftOnce = true;
  let listed = true;
  let silentTabs = true;
  for (let round = 0; round < rounds; round += 1) {
    const tabs = await Promise.all(target.servers.map((s, i) => connect(s.port, `dora#${i}`, WS, { auth: { token: token(3, "Dora") } })));
    let m = mark([...observers, ...tabs]);
    await Promise.all(tabs.map((t) => ack(t, "join", { role: "operator" })));
    await sleep(SETTLE_MS);
    const isDora = (d) => d.operatorId === 3;
    joinedOnce &&= observers.every((o) => countOf(m, o, "operatorConnected", isDora) === 1);
    silentTabs &&= tabs.every((t) => since(m, t, "operatorConnected").length === 0);
    const list = await Promise.all(observers.map(async (o) => {
      o.emit("getConnectedOperators");
      return next(o, "connectedOperatorsList");
    }));
    listed &&= list.every((l) => Array.isArray(l) && l.filter(isDora).length === 1);
    m = mark(observers);
    for (const t of tabs) t.disconnect();
    await sleep(SETTLE_MS);
    leftOnce &&= observers.every((o) => countOf(m, o, "operatorDisconnected", isDora) === 1);
  }
  check(joinedOnce, `${rounds} times three tabs of one operator joining at once on three nodes: one operatorConnected to each other operator`);
  check(silentTabs, "and none to the operator's own tabs");
  check(listed, "the operators list has it once, asked on any node");
  check(leftOnce, `${rounds} times the three leaving at once: one operatorDisconnected`);
}

// A node killed without a word: one survivor announces its visitor and its operator (whose only
// tab was there) gone, once, within `within` ms; an operator with a tab elsewhere stays.
async function checkKilledNode(target, observers, { within, notBefore = 0, label }) {
  const [A, , C] = target.servers;
  const [obsA] = observers;
  const eve = await joined(C.port, "Eve", "operator", 12);
  const fayHere = await joined(C.port, "Fay", "operator", 13);
  const fayThere = await joined(A.port, "Fay", "operator", 13);
  const vic = await joined(C.port, "Vic", "client");
  const vicId = vic.id;
  await next(obsA, "newChat", (d) => d.clientId === vicId);
  const m = mark(observers);
  const killed = Date.now();
  C.child.kill("SIGKILL");
  const isVic = (d) => d.clientId === vicId;
  const isEve = (d) => d.operatorId === 12;
  if (notBefore > 0) {
    const early = await next(obsA, "chatEnded", isVic, notBefore);
    check(early === undefined, `${label}: nothing announced within ${notBefore / 1000} s of the kill`, early);
  }
  const ended = await next(obsA, "chatEnded", isVic, within);
  const gone = await next(obsA, "operatorDisconnected", isEve, within);
  const took = Date.now() - killed;
  check(ended !== undefined && gone !== undefined && took <= within, `${label}: the dead node's visitor (chatEnded) and operator (operatorDisconnected) announced ${(took / 1000).toFixed(1)} s after its kill -9`, { ended, gone });
  await sleep(1000);
  check(observers.every((o) => countOf(m, o, "chatEnded", isVic) === 1 && countOf(m, o, "operatorDisconnected", isEve) === 1), `${label}: once each, on every surviving node`);
  check(observers.every((o) => countOf(m, o, "operatorDisconnected", (d) => d.operatorId === 13) === 0), `${label}: an operator with a tab on a survivor is not announced gone`);
  obsA.emit("getConnectedOperators");
  const list = await next(obsA, "connectedOperatorsList");
  check(Array.isArray(list) && !list.some(isEve) && list.some((d) => d.operatorId === 13), `${label}: the operators list drops the dead node's operator`, list);
  const a = await ack(obsA, "operatorMessage", { to: vicId, type: "text", message: "still there?" });
  check(same(a, { error: "unknown_client" }), `${label}: the dead node's visitor is an unknown client`, a);
  for (const s of [eve, fayHere, fayThere, vic]) s.disconnect();
}

async function checkClusterOnly() {
  section = "cluster-server.mjs: racing tabs, a node killed";
  console.log(`\n# ${section}`);
  const target = await startTarget("cluster", { RELAY_JWT_SECRET: SECRET });
  const [A, B] = target.servers;
  const observers = [await joined(A.port, "Obs A", "operator", 10), await joined(B.port, "Obs B", "operator", 11)];
  try {
    await checkRacingTabs(target, observers);
    await checkKilledNode(target, observers, { within: 10_000, label: "a node dies" });
  } finally {
    for (const o of observers) o.disconnect();
    await checkStops([A, B]);
    await target.stop();
  }

  section = "cluster-server.mjs with CLUSTER_FAULTS=local_to";
  console.log(`\n# ${section}`);
  const local = await startTarget("cluster", { RELAY_JWT_SECRET: SECRET, CLUSTER_FAULTS: "local_to" });
  const sockets = [];
  try {
    const [LA, LB] = local.servers;
    const op = await joined(LA.port, "Op", "operator", 20);
    const here = await joined(LA.port, "Here", "client");
    const there = await joined(LB.port, "There", "client");
    sockets.push(op, here, there);
    await next(op, "newChat", (d) => d.clientId === there.id);
    let a = await ack(op, "operatorMessage", { to: there.id, type: "text", message: "#sim1# hi" });
    const err = await next(op, "relayError");
    check(same(a, { error: "unknown_client" }) && err?.code === "unknown_client", "local_to: a reply to a visitor on another node is refused as unknown_client", { a, err });
    a = await ack(op, "operatorTyping", { to: there.id, isTyping: true });
    check(same(a, { error: "unknown_client" }), "local_to: so is typing to it", a);
    a = await ack(op, "operatorMessage", { to: here.id, type: "text", message: "#sim2# hi" });
    const got = await next(here, "incomingOperatorMessage");
    check(typeof a?.messageId === "string" && got?.messageId === a.messageId, "local_to: a reply to a visitor on the same node is delivered", { a, got });
    await sleep(SETTLE_MS);
    check(!there.log.some((r) => r.event === "incomingOperatorMessage" || r.event === "operatorTyping"), "local_to: the visitor on the other node gets nothing");
  } finally {
    for (const s of sockets) s.disconnect();
    await checkStops(local.servers);
    await local.stop();
  }

  section = "cluster-server.mjs with CLUSTER_FAULTS=late_reap";
  console.log(`\n# ${section}`);
  const late = await startTarget("cluster", { RELAY_JWT_SECRET: SECRET, CLUSTER_FAULTS: "late_reap" });
  const [LA, LB] = late.servers;
  const lateObservers = [await joined(LA.port, "Obs A", "operator", 10), await joined(LB.port, "Obs B", "operator", 11)];
  try {
    await checkKilledNode(late, lateObservers, { within: 25_000, notBefore: 12_000, label: "late_reap" });
  } finally {
    for (const o of lateObservers) o.disconnect();
    await checkStops([LA, LB]);
    await late.stop();
  }

  section = "cluster-server.mjs with CORS_ORIGIN";
  console.log(`\n# ${section}`);
  const fenced = await startTarget("cluster", { RELAY_JWT_SECRET: SECRET, CORS_ORIGIN: "https://chat.example" }, 1);
  try {
    const port = fenced.servers[0].port;
    const handshake = async (origin) => {
      const res = await fetch(`http://127.0.0.1:${port}/chat/?EIO=4&transport=polling`, { headers: origin ? { origin } : {} });
      await res.text();
      return res.status;
    };
    const statuses = [await handshake("https://chat.example"), await handshake(undefined), await handshake("https://evil.example")];
    check(same(statuses, [200, 200, 403]), "polling handshake: the allowed origin and no Origin let in, another origin 403", statuses);
    const evil = await connect(port, "evil", { ...WS, extraHeaders: { origin: "https://evil.example" } }).catch((e) => e);
    check(evil instanceof Error, "a WebSocket from another origin is refused", evil?.message);
    const good = await connect(port, "good", { ...WS, extraHeaders: { origin: "https://chat.example" } });
    check(good.connected, "a WebSocket from the allowed origin connects");
    good.disconnect();
  } finally {
    await checkStops(fenced.servers);
    await fenced.stop();
  }

  const faulty = await refusesToStart("cluster-server.mjs", { RELAY_JWT_SECRET: SECRET, REDIS_URL: "redis://127.0.0.1:1", CLUSTER_FAULTS: "nope" });
  check(faulty.code === 2 && /unknown fault "nope"/.test(faulty.stderr), "an unknown fault: exit 2", faulty);
  const lost = await refusesToStart("cluster-server.mjs", { RELAY_JWT_SECRET: SECRET, REDIS_URL: "" });
  check(lost.code === 2 && /REDIS_URL is required/.test(lost.stderr), "no REDIS_URL: exit 2", lost);
}

// ---------------------------------------------------------------- guide-server.mjs

async function checkGuide(tname, transport) {
  section = `guide-server.mjs over ${tname}`;
  console.log(`\n# ${section} (the guide's behaviour, flaws included)`);
  const server = await startServer("guide-server.mjs");
  const sockets = [];
  const open = async (label) => {
    const s = await connect(server.port, label, transport);
    sockets.push(s);
    return s;
  };
  try {
    const ann = await open("ann");
    const bob = await open("bob");
    const v1 = await open("visitor1");
    const v2 = await open("visitor2");
    const everyone = [ann, bob, v1, v2];
    let m = mark(everyone);
    ann.emit("join", { role: "operator", name: "Ann", operatorId: 1 });
    bob.emit("join", { role: "operator", name: "Bob", operatorId: 2 });
    await sleep(SETTLE_MS);
    check(everyone.every((s) => since(m, s, "operatorConnected").length === 0), "operator joins announce nothing (the example has no operatorConnected)");

    v1.emit("join", { role: "client", name: "Vis <b>One</b>", username: "Vis <b>One</b>" });
    let ev = await next(ann, "newChat");
    check(same(ev, { clientId: v1.id, username: "Vis <b>One</b>" }), "operators get newChat, username unsanitized", ev);
    ev = await next(v2, "newChat");
    check(ev?.clientId === v1.id, "FLAW kept: the other visitor gets newChat too (socket.broadcast)", ev);
    v2.emit("join", { role: "client", username: "Two" });
    await next(bob, "newChat", (d) => d.clientId === v2.id);

    m = mark(everyone);
    ann.emit("operatorMessage", { to: v1.id, type: "text", message: "hi <b>x</b>", operatorId: 999, operatorName: "Spoof" });
    ev = await next(v1, "incomingOperatorMessage");
    check(same(ev, { from: ann.id, type: "text", message: "hi <b>x</b>" }), "visitor gets incomingOperatorMessage (no messageId/timestamp, unsanitized)", ev);
    ev = await next(bob, "operatorMessageBroadcast");
    check(ev?.operatorId === 999 && ev?.operatorName === "Spoof" && ev?.message?.text === "hi <b>x</b>", "FLAW kept: broadcast carries the payload's identity", ev);
    const leakV1 = await next(v1, "operatorMessageBroadcast");
    const leakV2 = await next(v2, "operatorMessageBroadcast");
    check(leakV1 && leakV2, "FLAW kept: visitors get operatorMessageBroadcast too");
    await sleep(SETTLE_MS);
    check(since(m, ann, "operatorMessageBroadcast").length === 0, "the sender gets no echo");

    m = mark(everyone);
    v1.emit("clientMessage", { type: "text", message: "<i>help</i>" });
    for (const s of everyone) {
      ev = await next(s, "incomingMessage");
      check(same(ev, { from: v1.id, type: "text", message: "<i>help</i>" }), `FLAW kept: ${s.label} gets incomingMessage (io.emit), unsanitized`, ev);
    }

    m = mark(everyone);
    v1.emit("clientTyping", { isTyping: true });
    ev = await next(ann, "clientTyping");
    check(same(ev, { from: v1.id, isTyping: true }), "clientTyping reaches operators", ev);
    check(!!(await next(v2, "clientTyping")), "FLAW kept: and visitors");
    ann.emit("operatorTyping", { to: v1.id, isTyping: true });
    ev = await next(v1, "operatorTyping");
    check(same(ev, { isTyping: true }), "operatorTyping reaches the visitor", ev);

    const ann2 = await open("ann#2");
    ann2.emit("join", { role: "operator", name: "Ann", operatorId: 1 });
    await sleep(SETTLE_MS);
    ann.emit("getConnectedOperators");
    ev = await next(ann, "connectedOperatorsList");
    check(Array.isArray(ev) && ev.length === 3, "FLAW kept: one list entry per socket (ann twice)", ev);

    m = mark(everyone);
    for (let i = 0; i < 105; i += 1) v2.emit("clientMessage", { type: "text", message: `#sim${i + 1}#` });
    await sleep(SETTLE_MS * 2);
    check(since(m, ann, "incomingMessage").filter((d) => d.from === v2.id).length === 105 && since(m, v2, "rateLimitExceeded").length === 0, "no rate limit: 105 of 105 delivered");

    m = mark(everyone);
    const v1Id = v1.id;
    v1.disconnect();
    ev = await next(bob, "chatEnded", (d) => d.clientId === v1Id);
    check(same(ev, { clientId: v1Id }), "visitor leaving: chatEnded", ev);
    check(!!(await next(v2, "chatEnded")), "FLAW kept: chatEnded to visitors too");
    ann2.disconnect();
    ev = await next(bob, "operatorDisconnected");
    check(same(ev, { operatorId: 1, name: "Ann" }), "FLAW kept: operatorDisconnected for every tab (ann still has one)", ev);

    if (tname === "upgrade") {
      await sleep(500);
      check(bob.io.engine.transport.name === "websocket", "default transports upgraded to websocket", bob.io.engine.transport.name);
    } else {
      check(bob.io.engine.transport.name === tname, `transport is ${tname}`, bob.io.engine.transport.name);
    }
  } finally {
    for (const s of sockets) s.disconnect();
    const { code } = await stopServer(server);
    check(code === 0, "SIGTERM: clean exit 0", code);
    check(server.stdout() === `listening ${server.port}\n`, "stdout is exactly one `listening <port>` line", server.stdout());
  }
}

async function checkGuideCrash() {
  section = "guide-server.mjs with a payload-less join";
  console.log(`\n# ${section}`);
  const server = await startServer("guide-server.mjs");
  const s = await connect(server.port, "rude", {});
  s.emit("join");
  const [code] = await Promise.race([server.exited, sleep(3000).then(() => [null])]);
  check(code === 1 && /TypeError/.test(server.stderr()), "FLAW kept: a join without payload throws and ends the process, as the guide's server would", code);
  s.disconnect();
  if (code === null) await stopServer(server);
}

// ---------------------------------------------------------------- main

const which = process.argv.slice(2);
const want = (name) => which.length === 0 || which.includes(name);
const watchdog = setTimeout(() => {
  console.log(`FAIL timed out in ${section}`);
  process.exit(1);
}, 600_000);
try {
  for (const [tname, transport] of TRANSPORTS) {
    if (want("chat")) await checkChat(tname, transport);
  }
  for (const [tname, transport] of TRANSPORTS) {
    if (want("cluster")) await checkChat(tname, transport, "cluster");
  }
  if (want("cluster")) await checkClusterOnly();
  if (want("weak")) await checkWeak();
  for (const [tname, transport] of TRANSPORTS) {
    if (want("guide")) await checkGuide(tname, transport);
  }
  if (want("guide")) await checkGuideCrash();
} catch (e) {
  failed += 1;
  console.log(`FAIL ${section}: ${e?.stack ?? e}`);
}
clearTimeout(watchdog);
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
