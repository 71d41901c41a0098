// Smoke check of the two servers in this folder with socket.io-client 4.8, on each transport:
// WebSocket only, long-polling only, and the default (polling, then upgrade to WebSocket).
//
// chat-server.mjs must follow docs/PROTOCOL.md to the letter; guide-server.mjs must show the
// guide's example behaviour, flaws included. Prints one line per check and a summary; exits 1
// when any check fails.
//
// usage: node check.mjs [chat|guide]...   (both by default)
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { once } from "node:events";
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
  if (server.child.exitCode === null) server.child.kill("SIGTERM");
  const [code, signal] = await server.exited;
  return { code, signal };
}

// A connected socket whose every incoming event is kept, so steps can wait for one or
// check afterwards that none came.
async function connect(server, label, transport, opts = {}) {
  const sock = io(`http://127.0.0.1:${server.port}`, {
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

// ---------------------------------------------------------------- chat-server.mjs

async function checkChat(tname, transport) {
  section = `chat-server.mjs over ${tname}`;
  console.log(`\n# ${section}`);
  const server = await startServer("chat-server.mjs", {
    RELAY_JWT_SECRET: SECRET,
    RATE_LIMIT_PER_MINUTE: "100",
    TYPING_RATE_LIMIT_PER_MINUTE: "20",
  });
  const sockets = [];
  const open = async (label, opts) => {
    const s = await connect(server, label, transport, opts);
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
    const h = await health(server);
    check(h.sockets === 0 && h.operators === 0 && h.operatorSockets === 0 && h.clients === 0, "presence maps back to zero (/health)", h);
  } finally {
    for (const s of sockets) s.disconnect();
    const { code } = await stopServer(server);
    check(code === 0, "SIGTERM: clean exit 0", code);
    check(server.stdout() === `listening ${server.port}\n`, "stdout is exactly one `listening <port>` line", server.stdout());
    check(server.stderr() === "", "nothing on stderr", server.stderr());
  }
}

// ---------------------------------------------------------------- guide-server.mjs

async function checkGuide(tname, transport) {
  section = `guide-server.mjs over ${tname}`;
  console.log(`\n# ${section} (the guide's behaviour, flaws included)`);
  const server = await startServer("guide-server.mjs");
  const sockets = [];
  const open = async (label) => {
    const s = await connect(server, label, transport);
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
  const s = await connect(server, "rude", {});
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
}, 120_000);
try {
  for (const [tname, transport] of TRANSPORTS) {
    if (want("chat")) await checkChat(tname, transport);
  }
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
