// Drives the relay with socket.io-client 4.x, as the real frontend does: an operator on the
// default transports (long-polling, then upgrade to WebSocket), a visitor on long-polling
// only. Prints one JSON line with what each side saw; exits non-zero on any failure.
//
// usage: node interop.mjs <url including path, e.g. http://127.0.0.1:3001/chat> <operator token>
import { io } from "socket.io-client";

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  console.error("usage: node interop.mjs <url> <operator token>");
  process.exit(2);
}
const { origin, pathname } = new URL(url);

const timeout = setTimeout(() => {
  console.error("interop: timed out");
  process.exit(1);
}, 15000);

function waitFor(socket, event) {
  return new Promise((resolve) => socket.once(event, resolve));
}

const operator = io(origin, { path: pathname, auth: { token }, reconnection: false });
const visitor = io(origin, { path: pathname, transports: ["polling"], reconnection: false });
for (const s of [operator, visitor]) {
  s.on("connect_error", (e) => {
    console.error("interop: connect_error", e.message);
    process.exit(1);
  });
}

await Promise.all([waitFor(operator, "connect"), waitFor(visitor, "connect")]);
operator.emit("join", { role: "operator", name: "Ann", operatorId: 1 });
const listEvent = waitFor(operator, "connectedOperatorsList");
const list = await operator.timeout(5000).emitWithAck("getConnectedOperators");
const operators = await listEvent;

const newChat = waitFor(operator, "newChat");
visitor.emit("join", { role: "client", username: "Visitor <b>JS</b>" });
const chat = await newChat;

const incoming = waitFor(operator, "incomingMessage");
const visitorAck = await visitor.timeout(5000).emitWithAck("clientMessage", { type: "text", message: "hello from polling" });
const fromVisitor = await incoming;

const toVisitor = waitFor(visitor, "incomingOperatorMessage");
operator.emit("operatorMessage", { to: chat.clientId, type: "text", message: "hi <i>there</i>", operatorId: 999, operatorName: "Spoof" });
const fromOperator = await toVisitor;

const bad = waitFor(visitor, "relayError");
visitor.emit("operatorMessage", { to: visitor.id, type: "text", message: "x" });
const relayError = await bad;

if (operator.io.engine.transport.name !== "websocket") {
  await waitFor(operator.io.engine, "upgrade");
}

const result = {
  operatorTransport: operator.io.engine.transport.name,
  visitorTransport: visitor.io.engine.transport.name,
  visitorId: visitor.id,
  listAck: list,
  operators,
  newChat: chat,
  visitorAck,
  fromVisitor,
  fromOperator,
  relayError,
};
console.log(JSON.stringify(result));
clearTimeout(timeout);
operator.disconnect();
visitor.disconnect();
// let the long-polling transport deliver its disconnect packet before exiting
await new Promise((resolve) => setTimeout(resolve, 500));
process.exit(0);
