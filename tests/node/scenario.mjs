// A whole chat driven by the official socket.io-client (Node), against a server URL given as argv[2].
// Prints one JSON line with what it saw; exits non-zero on any failure.
import { io } from "socket.io-client";

const base = process.argv[2];
const fail = (msg) => { console.error("FAIL: " + msg); process.exit(1); };
const post = async (path, body) => {
  const r = await fetch(base + path, { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify(body) });
  if (!r.ok) fail(`${path} -> ${r.status}`);
  return r.json();
};
const connect = (ns, token) => new Promise((resolve, reject) => {
  const s = io(base + ns, { auth: token === undefined ? undefined : { token }, reconnection: false });
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
  try { await connect("/agent", "nope"); fail("bad token accepted"); }
  catch (err) { out.refused = { message: err.message, code: err.data && err.data.code }; }

  const login = await post("/api/auth/login", { email: "alice@example.com", password: "demo" });
  const agent = await connect("/agent", login.token);
  const v = await post("/api/visitors", { name: "Node Customer" });
  const customer = await connect("/customer", v.token);
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
  const sync = await call(customer, "conversation.sync", { conversation_id: conv.id, after_seq: 0 });
  out.sync_count = sync.messages.length;
  out.sync_has_note = sync.messages.some((m) => m.kind === "note");
  await new Promise((r) => setTimeout(r, 200));
  out.note_leaked = JSON.stringify(customerFrames).includes("NODE-NOTE-CANARY");
  agent.disconnect();
  customer.disconnect();
  console.log(JSON.stringify(out));
  process.exit(0);
} catch (err) {
  fail(String(err && err.stack || err));
}
