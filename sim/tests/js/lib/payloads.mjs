// Events and payloads, shared by the backends of this folder: which role may send which
// event, the shapes of what arrives (a `Refusal` thrown for anything wrong, with the
// relayError code it earns), and the shapes of what is delivered.
import { randomBytes } from "node:crypto";

import { validateImage } from "./images.mjs";
import { stripMarkup } from "./sanitize.mjs";
import { absent, isU64 } from "./tokens.mjs";

// ---------------------------------------------------------------- events

export const OPERATORS = "operators"; // the room every operator socket joins
export const MESSAGE_EVENTS = new Set(["operatorMessage", "clientMessage"]);
export const TYPING_EVENTS = new Set(["operatorTyping", "clientTyping"]);
export const ROLE_OF = {
  operatorMessage: "operator",
  operatorTyping: "operator",
  getConnectedOperators: "operator",
  clientMessage: "client",
  clientTyping: "client",
};

// ---------------------------------------------------------------- payload shapes

export class Refusal {
  constructor(code, message) {
    this.code = code;
    this.message = message;
  }
}

const bad = (message) => new Refusal("invalid_payload", `bad payload: ${message}`);

export function object(data) {
  if (data === null || typeof data !== "object" || Array.isArray(data) || Buffer.isBuffer(data)) {
    throw bad("expected an object");
  }
  return data;
}

export function field(data, key, kind, required) {
  const v = data[key];
  if (absent(v)) {
    if (required) throw bad(`missing field \`${key}\``);
    return undefined;
  }
  const ok = kind === "u64" ? isU64(v) : typeof v === kind;
  if (!ok) throw bad(`\`${key}\` must be ${kind === "u64" ? "a non-negative integer" : `a ${kind}`}`);
  return v;
}

export function messageBody(data) {
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

// A message that passed validation: what every delivery carries. `images` is
// {maxImageBytes, lax} for validateImage.
export function validateContent(body, images) {
  if (body.type === "text") {
    if (body.message === undefined) throw new Refusal("invalid_payload", "a text message needs `message`");
    const text = stripMarkup(body.message);
    if (text.trim() === "") throw new Refusal("invalid_payload", "text is empty once markup is removed");
    return { type: "text", text };
  }
  if (body.image === undefined) throw new Refusal("invalid_payload", "an image message needs `image`");
  const checked = validateImage(body.image, body.mimeType, images.maxImageBytes, images.lax);
  if (checked.code) throw new Refusal(checked.code, checked.message);
  return {
    type: "image",
    image: body.image,
    name: stripMarkup(body.name ?? "image"),
    mimeType: body.mimeType,
    size: checked.size,
  };
}

// Bytes of an event as it would be written; `Infinity` when it cannot be written (nesting
// too deep for JSON.stringify's recursion), which makes it too large.
export function eventSize(event, args) {
  try {
    return Buffer.byteLength(JSON.stringify([event, ...args]));
  } catch {
    return Infinity;
  }
}

// ---------------------------------------------------------------- deliveries

// Message ids unique across processes: a random prefix per process, then a counter.
export function messageIds() {
  const prefix = randomBytes(6).toString("hex");
  let next = 0;
  return () => `${prefix}-${(next += 1)}`;
}

export const timestamp = () => new Date().toISOString();

// An operator's message `content` from socket `from` to visitor `to`: what the visitor gets
// (incomingOperatorMessage) and what the other operator sockets get (operatorMessageBroadcast).
export function operatorDeliveries(content, { from, to, operatorId, operatorName, messageId, timestamp }) {
  const toClient = { from, type: content.type };
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
  toClient.messageId = messageId;
  toClient.timestamp = timestamp;
  Object.assign(forOperators, { timestamp, operatorId, operatorName, messageId });
  return { toClient, broadcast: { clientId: to, operatorId, operatorName, message: forOperators } };
}

// A visitor's message `content` from socket `from`, as operators get it (incomingMessage).
export function clientDelivery(content, { from, messageId, timestamp }) {
  const incoming = { from, type: content.type };
  if (content.type === "text") {
    incoming.message = content.text;
  } else {
    incoming.image = content.image;
    incoming.name = content.name;
    incoming.mimeType = content.mimeType;
    incoming.size = content.size;
  }
  incoming.messageId = messageId;
  incoming.timestamp = timestamp;
  return incoming;
}

// The order of connectedOperatorsList: by operator id (then name, for a stable answer).
export const byOperator = (a, b) => a.operatorId - b.operatorId || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
