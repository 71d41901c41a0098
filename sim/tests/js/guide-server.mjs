// The frontend team's "Complete Example Implementation" (the backend guide the frontend was
// written against), kept as written, flaws included: `incomingMessage` goes to every socket
// (io.emit); `newChat`, `clientTyping`, `chatEnded` and `operatorMessageBroadcast` go to
// every other socket, visitors included (socket.broadcast); no `operatorConnected`;
// `operatorDisconnected` for every operator tab that closes; operatorId and operatorName
// taken from the payload; one operators-list entry per socket; no token, no rate limit, no
// sanitizing, no validation (a payload-less `join` or `operatorMessage` throws in a
// listener, which ends the process, as it would end the guide's server); no acks.
//
// Changes from the guide, none of them in what goes over the wire: the port comes from
// argv[2], `listening <port>` is printed once listening, the per-event console.log lines are
// gone (they would flood), ESM imports, node:http instead of express (other paths get
// express's default 404), exit on SIGTERM/SIGINT.
//
// usage: node guide-server.mjs <port>        (port 0 picks a free port)
//   GUIDE_KEEP_RUNNING=1  log an exception thrown by a handler instead of dying (not the
//                         guide's behaviour; off by default)
import { createServer } from "node:http";
import { Server } from "socket.io";

const portArg = process.argv[2] ?? process.env.PORT ?? "3001";
if (!/^\d+$/.test(portArg) || Number(portArg) > 65535) {
  process.stderr.write("usage: node guide-server.mjs <port>\n");
  process.exit(2);
}

// express with no routes: every request socket.io does not take gets express's 404
const server = createServer((req, res) => {
  const body = `<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Error</title>\n</head>\n<body>\n<pre>Cannot ${req.method} ${req.url}</pre>\n</body>\n</html>\n`;
  res.writeHead(404, {
    "Content-Security-Policy": "default-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Content-Type": "text/html; charset=utf-8",
    "Content-Length": Buffer.byteLength(body),
  });
  res.end(body);
});
const io = new Server(server, {
  cors: {
    origin: "*", // Configure appropriately for production
    methods: ["GET", "POST"],
  },
  path: "/chat",
});

// Track connected operators
const operatorSockets = new Map(); // socketId -> { operatorId, name, socketId }

io.on("connection", (socket) => {
  // JOIN: Operator or Client connects
  socket.on("join", (data) => {
    const { role, name, operatorId } = data;

    if (role === "operator") {
      operatorSockets.set(socket.id, {
        socketId: socket.id,
        operatorId: operatorId,
        name: name || "Operador",
      });
    } else if (role === "client") {
      // Notify all operators about new client
      socket.broadcast.emit("newChat", {
        clientId: socket.id,
        username: data.username,
      });
    }
  });

  // OPERATOR MESSAGE: Operator sends message to client
  socket.on("operatorMessage", (data) => {
    const {
      to,
      type,
      message,
      image,
      name,
      mimeType,
      size,
      operatorId,
      operatorName,
    } = data;

    // Send to client
    if (type === "text") {
      io.to(to).emit("incomingOperatorMessage", {
        from: socket.id,
        type: "text",
        message: message,
      });
    } else if (type === "image") {
      io.to(to).emit("incomingOperatorMessage", {
        from: socket.id,
        type: "image",
        image: image,
        name: name,
        mimeType: mimeType,
      });
    }

    // Broadcast to all other operators
    const messageForOperators = {
      from: "operator",
      text: message,
      image: image,
      mimeType: mimeType,
      name: name,
      timestamp: new Date().toISOString(),
      operatorId: operatorId,
      operatorName: operatorName,
    };

    socket.broadcast.emit("operatorMessageBroadcast", {
      clientId: to,
      message: messageForOperators,
      operatorId: operatorId,
      operatorName: operatorName,
    });
  });

  // CLIENT MESSAGE: Client sends message to operator
  socket.on("clientMessage", (data) => {
    const { type, message, image, name, mimeType, size } = data;

    // Broadcast to ALL operators (not just one)
    const payload = {
      from: socket.id,
      type: type,
    };

    if (type === "text") {
      payload.message = message;
    } else if (type === "image") {
      payload.image = image;
      payload.name = name;
      payload.mimeType = mimeType;
      payload.size = size;
    }

    io.emit("incomingMessage", payload);
  });

  // OPERATOR TYPING: Notify client that operator is typing
  socket.on("operatorTyping", (data) => {
    io.to(data.to).emit("operatorTyping", {
      isTyping: data.isTyping,
    });
  });

  // CLIENT TYPING: Notify operators that client is typing
  socket.on("clientTyping", (data) => {
    socket.broadcast.emit("clientTyping", {
      from: socket.id,
      isTyping: data.isTyping,
    });
  });

  // DISCONNECT: Clean up on disconnect
  socket.on("disconnect", () => {
    const operator = operatorSockets.get(socket.id);

    if (operator) {
      operatorSockets.delete(socket.id);

      socket.broadcast.emit("operatorDisconnected", {
        operatorId: operator.operatorId,
        name: operator.name,
      });
    } else {
      // Notify operators that client left
      socket.broadcast.emit("chatEnded", {
        clientId: socket.id,
      });
    }
  });

  // Optional: Get list of connected operators
  socket.on("getConnectedOperators", () => {
    const operators = Array.from(operatorSockets.values()).map(op => ({
      operatorId: op.operatorId,
      name: op.name,
    }));

    socket.emit("connectedOperatorsList", operators);
  });
});

if (process.env.GUIDE_KEEP_RUNNING === "1") {
  process.on("uncaughtException", (e) => {
    process.stderr.write(`guide-server: handler threw: ${e?.stack ?? e}\n`);
  });
}

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(0), 2000).unref();
  io.close(() => process.exit(0));
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

server.on("error", (e) => {
  process.stderr.write(`guide-server: cannot listen: ${e.message}\n`);
  process.exit(2);
});
server.listen(Number(portArg), () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
