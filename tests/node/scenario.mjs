// A whole chat driven by the official socket.io-client (Node), against a server URL given as argv[2].
// argv[3] and argv[4] name the agent's and the customer's parser ("json", the default, or "msgpack":
// socket.io-msgpack-parser); argv[5] the transports ("default": polling then the upgrade to websocket,
// "websocket" or "polling" alone). Prints one JSON line with what it saw; exits non-zero on any failure.
import { io } from "socket.io-client";
import msgpackParser from "socket.io-msgpack-parser";

const base = process.argv[2];
const [agentParser = "json", customerParser = "json", transport = "default"] = process.argv.slice(3);
const fail = (msg) => { console.error("FAIL: " + msg); process.exit(1); };
const request = async (method, path, body, token) => {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = "Bearer " + token;
  const r = await fetch(base + path, { method, headers, body: JSON.stringify(body) });
  if (!r.ok) fail(`${method} ${path} -> ${r.status}`);
  return r.json();
};
const post = (path, body) => request("POST", path, body);
const connect = (ns, token, parser = "json") => new Promise((resolve, reject) => {
  const options = { auth: token === undefined ? undefined : { token }, reconnection: false };
  if (parser === "msgpack") options.parser = msgpackParser;
  if (transport !== "default") options.transports = [transport];
  const s = io(base + ns, options);
  s.on("connect", () => resolve(s));
  s.on("connect_error", (err) => reject(err));
});
const call = (s, ev, payload) => s.timeout(5000).emitWithAck(ev, payload);
const waitFor = (s, ev, pred) => new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error("timeout waiting for " + ev)), 5000);
  const h = (d) => { if (!pred || pred(d)) { clearTimeout(t); s.off(ev, h); resolve(d); } };
  s.on(ev, h);
});

const out = {};
try {
  // A bad token is refused at connect with a clear reason.
  try { await connect("/agent", "nope", agentParser); fail("bad token accepted"); }
  catch (err) { out.refused = { message: err.message, code: err.data && err.data.code }; }
  try { await connect("/customer", undefined, customerParser); fail("no auth accepted"); }
  catch (err) { out.no_auth = err.data && err.data.code; }

  const login = await post("/api/auth/login", { email: "alice@example.com", password: "demo" });
  const agent = await connect("/agent", login.token, agentParser);
  const v = await post("/api/visitors", { name: "Node Customer" });
  const customer = await connect("/customer", v.token, customerParser);
  out.transports = [agent.io.engine.transport.name, customer.io.engine.transport.name];
  const customerFrames = [];
  customer.onAny((ev, d) => customerFrames.push([ev, d]));

  const ringing = waitFor(agent, "conversation.new");
  const started = await call(customer, "conversation.start", { body: "hello from node" });
  if (!started.ok) fail("start: " + JSON.stringify(started));
  const conv = started.conversation;
  const ring = await ringing;
  out.ring = ring.ring === true && ring.conversation.id === conv.id;

  const assigned = await call(agent, "conversation.assign", { conversation_id: conv.id });
  out.assigned = assigned.ok && assigned.conversation.assignee_id === login.agent.id;

  const got = waitFor(customer, "message.new", (d) => d.message.client_id === "node-a1");
  const sent = await call(agent, "message.send", { conversation_id: conv.id, client_id: "node-a1", kind: "text",
    body: "hi node" });
  out.agent_message = sent.ok && (await got).message.body === "hi node";

  const again = await call(agent, "message.send", { conversation_id: conv.id, client_id: "node-a1", kind: "text",
    body: "hi node" });
  out.idempotent = again.ok && again.message.id === sent.message.id;

  const note = await call(agent, "note.add", { conversation_id: conv.id, body: "NODE-NOTE-CANARY" });
  out.note = note.ok;
  const bad = await call(customer, "message.send", { conversation_id: conv.id });
  out.invalid = bad.ok === false && bad.error.code;
  const binary = await call(customer, "message.send", { conversation_id: new Uint8Array([1, 2, 3]), client_id: "b1",
    body: "x" });
  out.binary_invalid = binary.ok === false && binary.error.code;
  const customerReply = waitFor(agent, "message.new", (d) => d.message.client_id === "node-c1");
  const replied = await call(customer, "message.send", { conversation_id: conv.id, client_id: "node-c1",
    body: "été ✓ 😀" });
  out.customer_message = replied.ok && (await customerReply).message.body === "été ✓ 😀";
  const sync = await call(customer, "conversation.sync", { conversation_id: conv.id, after_seq: 0 });
  out.sync_count = sync.messages.length;
  out.sync_has_note = sync.messages.some((m) => m.kind === "note");
  await new Promise((r) => setTimeout(r, 200));
  out.note_leaked = JSON.stringify(customerFrames).includes("NODE-NOTE-CANARY");

  // The server disconnects the agent's sockets when its password changes: a clean "io server disconnect".
  const revoked = waitFor(agent, "session.revoked");
  const gone = new Promise((resolve) => agent.on("disconnect", (reason) => resolve(reason)));
  await request("PATCH", "/api/me", { password: "a-new-password-1", current_password: "demo" }, login.token);
  out.revoked = (await revoked).reason;
  out.server_disconnect = await gone;
  agent.disconnect();
  customer.disconnect();
  console.log(JSON.stringify(out));
  process.exit(0);
} catch (err) {
  fail(String(err && err.stack || err));
}
