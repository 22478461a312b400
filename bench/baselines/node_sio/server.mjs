// Baseline: the Node socket.io 4.8 server with the same hub logic as the other targets.
// Namespaces /agent and /customer; `join {room}` enters a room; `message.send {conversation_id, client_id,
// kind, body}` builds a message, broadcasts `message.new {message}` to the room named by conversation_id
// (sender included) and acks `{ok: true, message}`. Listens on 127.0.0.1:0 and prints "READY <port>".
import { createServer } from "node:http";
import { Server } from "socket.io";

const http = createServer();
const io = new Server(http, { cors: { origin: "*" }, pingInterval: 20000, pingTimeout: 20000,
  maxHttpBufferSize: 1e6, transports: ["websocket", "polling"] });
let counter = 0;
const seqs = new Map();

for (const name of ["/agent", "/customer"]) {
  const nsp = io.of(name);
  nsp.use((socket, next) => {
    const token = socket.handshake.auth && socket.handshake.auth.token;
    if (typeof token !== "string" || !token) {
      const err = new Error("unauthorized");
      err.data = { code: "unauthorized" };
      return next(err);
    }
    socket.data.id = token;
    next();
  });
  nsp.on("connection", (socket) => {
    socket.on("join", (p, ack) => {
      if (!p || typeof p.room !== "string") return ack && ack({ ok: false, error: { code: "invalid" } });
      socket.join(p.room);
      if (ack) ack({ ok: true });
    });
    socket.on("message.send", (p, ack) => {
      if (!p || typeof p.conversation_id !== "string" || typeof p.body !== "string") {
        return ack && ack({ ok: false, error: { code: "invalid", message: "bad payload" } });
      }
      const seq = (seqs.get(p.conversation_id) || 0) + 1;
      seqs.set(p.conversation_id, seq);
      const message = {
        id: "msg_" + (++counter).toString(36), conversation_id: p.conversation_id, seq,
        client_id: p.client_id, author: { kind: name.slice(1), id: socket.data.id, name: "Bench" },
        kind: p.kind || "text", body: p.body, created_at: new Date().toISOString(),
      };
      nsp.server.of("/agent").to(p.conversation_id).emit("message.new", { message });
      nsp.server.of("/customer").to(p.conversation_id).emit("message.new", { message });
      if (ack) ack({ ok: true, message });
    });
  });
}

http.listen(0, "127.0.0.1", () => {
  console.log("READY " + http.address().port);
});
process.on("SIGTERM", () => process.exit(0));
