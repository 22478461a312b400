// The benchmark's load generator: one Node process speaking Engine.IO v4 / Socket.IO v4 frames directly
// over `ws` (no socket.io-client: its per-packet work would make the client the bottleneck).
//
// It reads one JSON command per line on stdin and answers one JSON line on stdout, so the orchestrator
// can read the server's CPU counters between commands. Commands:
//   {cmd: "setup_pairs", target, url, agent_url?, pairs, seed?, parser?} 1:1 conversations (customer + agent)
//   {cmd: "closed", seconds}                                           closed loop over the pairs
//   {cmd: "rate", rate, seconds}                                       open loop at a fixed rate
//   {cmd: "setup_fanout", target, url, senders, agents, seed?}         one team of agents, a few customers
//   {cmd: "fanout", seconds}                                           closed loop, each send fans out
//   {cmd: "prepare_idle", target, url, visitors}                       REST work before the idle run
//   {cmd: "idle", target, url, n, concurrency}                         open n idle /customer sockets
//   {cmd: "close_all"}                                                 close every socket
//   {cmd: "quit"}
// Every answer carries `client_cpu` (fraction of one core this process used during the command).
// `parser: "msgpack"` (with setup_pairs, setup_fanout and idle) makes the sockets speak the msgpack parser
// (socket.io-msgpack-parser's encoding: one MessagePack map {type, nsp, data, id} per binary message,
// encoded with notepack.io as that parser does) instead of the JSON one.
import { createInterface } from "node:readline";
import { performance } from "node:perf_hooks";
import WebSocket from "ws";
import notepack from "notepack.io";

const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// -- one Engine.IO websocket carrying one Socket.IO namespace -------------------------------------------
class Conn {
  constructor(base, ns, parser = "json") {
    this.msgpack = parser === "msgpack";
    this.url = base.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket";
    this.ns = ns;
    this.prefix = ns === "/" ? "" : ns + ",";
    this.nextId = 1;
    this.pending = new Map();
    this.onMessageNew = null; // (clientId) => void, for each "message.new" event (either parser)
    this.closed = false;
  }

  connect(auth) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url, { perMessageDeflate: false });
      this.ws = ws;
      let state = 0;
      const timer = setTimeout(() => reject(new Error("connect timeout")), 20000);
      ws.on("error", (err) => { clearTimeout(timer); reject(err); });
      ws.on("close", () => { this.closed = true; });
      ws.on("message", (raw, isBinary) => {
        if (isBinary) {
          if (state === 2) { this.binary(raw); return; }
          const p = notepack.decode(raw);
          if (state === 1 && p.type === 0) { state = 2; clearTimeout(timer); resolve(this); return; }
          if (state === 1 && p.type === 4) { clearTimeout(timer); reject(new Error("refused: " + JSON.stringify(p))); return; }
          return;
        }
        const s = raw.toString();
        if (state === 0) {
          if (s[0] !== "0") return reject(new Error("expected open, got " + s.slice(0, 80)));
          state = 1;
          if (this.msgpack) ws.send(notepack.encode({ type: 0, nsp: this.ns, data: auth }));
          else ws.send("40" + this.prefix + JSON.stringify(auth));
          return;
        }
        if (state === 1) {
          if (s === "2") { ws.send("3"); return; }
          if (s.startsWith("40" + this.prefix)) {
            state = 2;
            clearTimeout(timer);
            resolve(this);
            return;
          }
          if (s.startsWith("44")) { clearTimeout(timer); reject(new Error("refused: " + s)); return; }
          return;
        }
        this.frame(s);
      });
    });
  }

  frame(s) {
    const c0 = s.charCodeAt(0);
    if (c0 === 50 /* "2" ping */ && s.length === 1) { this.ws.send("3"); return; }
    if (c0 !== 52 /* "4" */) return;
    const type = s.charCodeAt(1);
    let i = 2;
    if (this.prefix) {
      if (!s.startsWith(this.prefix, 2)) return;
      i += this.prefix.length;
    }
    if (type === 51 /* "3" ack */) {
      const b = s.indexOf("[", i);
      const id = +s.slice(i, b);
      const p = this.pending.get(id);
      if (p) { this.pending.delete(id); p(s, b); }
    } else if (type === 50 /* "2" event */) {
      if (this.onMessageNew && s.startsWith('["message.new"', i)) this.onMessageNew(clientIdOf(s, i));
    }
  }

  // A msgpack packet. As the JSON path reads a "message.new" frame's client_id without parsing it, so does
  // this one: the server writes a packet's keys in the order type, nsp, data, id, so byte 6 is the type
  // (a positive fixint after fixmap, fixstr "type"); an event's bytes are searched for its name and its
  // client_id. Acks (small) are decoded.
  binary(buf) {
    const type = buf[6];
    if (type === 2) {
      if (this.onMessageNew && buf.indexOf(MSG_NEW) >= 0) this.onMessageNew(msgpackClientId(buf));
      return;
    }
    const p = notepack.decode(buf);
    if (p.nsp !== this.ns || p.type !== 3) return;
    const done = this.pending.get(p.id);
    if (done) { this.pending.delete(p.id); done(null, 0, p.data); }
  }

  // emit with an ack; `done(frame, bracketIndex, args)` gets the raw JSON ack frame, or msgpack's args
  emitRaw(event, payload, done) {
    const id = this.nextId++;
    this.pending.set(id, done);
    if (this.msgpack) this.ws.send(notepack.encode({ type: 2, nsp: this.ns, id, data: [event, payload] }));
    else this.ws.send("42" + this.prefix + id + JSON.stringify([event, payload]));
  }

  call(event, payload, timeoutMs = 15000) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("ack timeout for " + event)), timeoutMs);
      this.emitRaw(event, payload, (s, b, args) => {
        clearTimeout(t);
        resolve(args ? args[0] : JSON.parse(s.slice(b))[0]);
      });
    });
  }

  close() { if (!this.closed) { this.closed = true; try { this.ws.close(); } catch { /* gone */ } } }
}

// -- REST (ours only) ------------------------------------------------------------------------------------
async function post(base, path, body) {
  const r = await fetch(base + path, { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`${path} -> ${r.status} ${await r.text()}`);
  return r.json();
}

async function inBatches(items, size, fn) {
  const out = [];
  for (let i = 0; i < items.length; i += size) {
    out.push(...await Promise.all(items.slice(i, i + size).map(fn)));
  }
  return out;
}

const MSG_NEW = Buffer.from("\xabmessage.new", "latin1"); // fixstr of 11 bytes
const CLIENT_ID = Buffer.from("\xa9client_id", "latin1");

// client_id of a msgpack "message.new" packet, without decoding it (a fixstr or str 8 after the key)
function msgpackClientId(buf) {
  const k = buf.indexOf(CLIENT_ID);
  if (k < 0) return null;
  let at = k + CLIENT_ID.length;
  let n = buf[at];
  if (n >= 0xa0 && n <= 0xbf) { n -= 0xa0; at += 1; } else if (n === 0xd9) { n = buf[at + 1]; at += 2; } else return null;
  return buf.toString("utf8", at, at + n);
}

// client_id of a "message.new" frame, without parsing the whole JSON
function clientIdOf(s, from) {
  const k = s.indexOf('"client_id":', from);
  if (k < 0) return null;
  const start = s.indexOf('"', k + 12) + 1;
  return s.slice(start, s.indexOf('"', start));
}

const OK_ACK = /^\[\{"ok": ?true/;

function pct(values, p) {
  if (!values.length) return null;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor(p / 100 * sorted.length))];
}

function summary(values) {
  return { n: values.length, p50_ms: pct(values, 50), p99_ms: pct(values, 99), max_ms: pct(values, 100) };
}

// -- state ------------------------------------------------------------------------------------------------
let conns = [];
let pairs = [];      // {customer, agent, conv}
let fan = null;      // {senders: [{conn, conv}], agents: [conn]}
let idleTokens = [];
let seqNo = 0;
const inflight = new Map(); // client_id -> {t0, acked, delivered, need, tAck, tDeliver, onDone}

function track(conn, isPeer) {
  conn.onMessageNew = (cid) => {
    const m = cid && inflight.get(cid);
    if (!m) return;
    if (isPeer(conn, m)) {
      m.delivered += 1;
      if (m.delivered === m.need) { m.tDeliver = now(); if (m.acked) finish(cid, m); }
    } else {
      m.echoes += 1;
    }
  };
}

function finish(cid, m) {
  inflight.delete(cid);
  if (m.onDone) m.onDone(m);
}

function send(sender, conv, need, peerTag, onDone) {
  const cid = "b" + (++seqNo).toString(36);
  const m = { t0: now(), acked: false, delivered: 0, echoes: 0, need, peer: peerTag, tAck: 0, tDeliver: 0,
    ok: true, onDone };
  inflight.set(cid, m);
  sender.emitRaw("message.send", { conversation_id: conv, client_id: cid, kind: "text",
    body: "benchmark message " + cid + " with a few words of text" }, (s, b, args) => {
    m.acked = true;
    m.tAck = now();
    m.ok = args ? args[0].ok === true : OK_ACK.test(s.slice(b, b + 16));
    if (!m.ok && !m.errorShown) {
      m.errorShown = true;
      process.stderr.write("nack: " + (args ? JSON.stringify(args) : s).slice(0, 300) + "\n");
    }
    if (!m.ok || m.delivered >= m.need) finish(cid, m);
  });
  return m;
}

// -- setup ------------------------------------------------------------------------------------------------
async function setupPairs({ target, url, agent_url, pairs: n, seed, parser }) {
  const agentBase = agent_url || url;
  const out = [];
  await inBatches([...Array(n).keys()], 25, async (i) => {
    let agentAuth, customerAuth, conv;
    if (target === "ours") {
      const login = await post(agentBase, "/api/auth/login", { email: seed.pairs[i].email, password: seed.password });
      const v = await post(url, "/api/visitors", { name: "Bench customer " + i });
      agentAuth = { token: login.token };
      customerAuth = { token: v.token };
    } else {
      agentAuth = { token: "agent-" + i };
      customerAuth = { token: "customer-" + i };
    }
    const agent = await new Conn(agentBase, "/agent", parser).connect(agentAuth);
    const customer = await new Conn(url, "/customer", parser).connect(customerAuth);
    conns.push(agent, customer);
    if (target === "ours") {
      const started = await customer.call("conversation.start", { team_id: seed.pairs[i].team_id, body: "hello" });
      if (!started.ok) throw new Error("start: " + JSON.stringify(started));
      conv = started.conversation.id;
      const assigned = await agent.call("conversation.assign", { conversation_id: conv });
      if (!assigned.ok) throw new Error("assign: " + JSON.stringify(assigned));
    } else {
      conv = "conv-" + i;
      for (const c of [agent, customer]) {
        const r = await c.call("join", { room: conv });
        if (!r.ok) throw new Error("join failed");
      }
    }
    const pair = { agent, customer, conv };
    agent.pairRole = "agent";
    customer.pairRole = "customer";
    out[i] = pair;
  });
  pairs = out;
  for (const p of pairs) {
    // the peer of a message is the pair's other side
    track(p.agent, (c, m) => m.peer === "agent");
    track(p.customer, (c, m) => m.peer === "customer");
  }
  await sleep(300); // let setup events (ring, assignment) drain
  return { pairs: pairs.length };
}

async function setupFanout({ target, url, senders, agents, seed, parser }) {
  const agentConns = await inBatches([...Array(agents).keys()], 25, async (i) => {
    let auth;
    if (target === "ours") {
      const login = await post(url, "/api/auth/login", { email: seed.fan.agents[i], password: seed.password });
      auth = { token: login.token };
    } else {
      auth = { token: "fan-agent-" + i };
    }
    return new Conn(url, "/agent", parser).connect(auth);
  });
  conns.push(...agentConns);
  const senderList = [];
  for (let k = 0; k < senders; k++) {
    let auth;
    if (target === "ours") {
      const v = await post(url, "/api/visitors", { name: "Fan customer " + k });
      auth = { token: v.token };
    } else {
      auth = { token: "fan-customer-" + k };
    }
    const conn = await new Conn(url, "/customer", parser).connect(auth);
    conns.push(conn);
    let conv;
    if (target === "ours") {
      const started = await conn.call("conversation.start", { team_id: seed.fan.team_id, body: "hello" });
      if (!started.ok) throw new Error("start: " + JSON.stringify(started));
      conv = started.conversation.id;
    } else {
      conv = "fan-" + k;
      await conn.call("join", { room: conv });
      await Promise.all(agentConns.map((a) => a.call("join", { room: conv })));
    }
    senderList.push({ conn, conv });
    track(conn, () => false);
  }
  for (const a of agentConns) track(a, () => true);
  fan = { senders: senderList, agents: agentConns };
  await sleep(300);
  return { agents: agentConns.length, senders: senderList.length };
}

// -- load -------------------------------------------------------------------------------------------------
async function closedLoop({ seconds }) {
  const ack = [], e2e = [];
  let sent = 0, done = 0, failed = 0;
  const t0 = now();
  const end = t0 + seconds * 1000;
  let lastDone = t0;
  await new Promise((resolve) => {
    let active = pairs.length;
    pairs.forEach((p, idx) => {
      let dir = idx % 2;
      const next = () => {
        if (now() >= end) { if (--active === 0) resolve(); return; }
        dir ^= 1;
        const [from, peer] = dir ? [p.customer, "agent"] : [p.agent, "customer"];
        sent += 1;
        send(from, p.conv, 1, peer, (m) => {
          if (!m.ok) failed += 1;
          done += 1;
          lastDone = now();
          ack.push(m.tAck - m.t0);
          if (m.tDeliver) e2e.push(m.tDeliver - m.t0);
          next();
        });
      };
      next();
    });
    setTimeout(() => resolve(), seconds * 1000 + 5000);
  });
  const elapsed = (lastDone - t0) / 1000;
  inflight.clear();
  return { sent, done, failed, elapsed_s: elapsed, msg_per_s: done / elapsed, ack: summary(ack), e2e: summary(e2e) };
}

async function rateLoop({ rate, seconds, drain_s = 3 }) {
  const ack = [], e2e = [];
  let sent = 0, done = 0, failed = 0, lost = 0;
  const total = Math.round(rate * seconds);
  const t0 = now();
  let rr = 0;
  const tick = () => {
    const due = Math.min(total, Math.floor((now() - t0) / 1000 * rate));
    while (sent < due) {
      const p = pairs[rr % pairs.length];
      const dir = Math.floor(rr / pairs.length) % 2;
      rr += 1;
      const [from, peer] = dir ? [p.agent, "customer"] : [p.customer, "agent"];
      sent += 1;
      send(from, p.conv, 1, peer, (m) => {
        if (!m.ok) failed += 1;
        done += 1;
        ack.push(m.tAck - m.t0);
        if (m.tDeliver) e2e.push(m.tDeliver - m.t0);
      });
    }
  };
  await new Promise((resolve) => {
    const iv = setInterval(() => {
      tick();
      if (sent >= total) { clearInterval(iv); resolve(); }
    }, 1);
  });
  const sendEnd = now();
  const drainUntil = sendEnd + drain_s * 1000;
  while (inflight.size && now() < drainUntil) await sleep(5);
  lost = inflight.size;
  for (const m of inflight.values()) {
    if (m.acked) ack.push(m.tAck - m.t0);
  }
  inflight.clear();
  const elapsed = (sendEnd - t0) / 1000;
  return { rate, sent, done, failed, lost, elapsed_s: elapsed, offered_per_s: sent / elapsed,
    drain_s: (now() - sendEnd) / 1000, ack: summary(ack), e2e: summary(e2e) };
}

async function fanoutLoop({ seconds }) {
  const ack = [], all = [];
  let sent = 0, done = 0, deliveries = 0;
  const need = fan.agents.length;
  const t0 = now();
  const end = t0 + seconds * 1000;
  let lastDone = t0;
  await new Promise((resolve) => {
    let active = fan.senders.length;
    for (const s of fan.senders) {
      const next = () => {
        if (now() >= end) { if (--active === 0) resolve(); return; }
        sent += 1;
        send(s.conn, s.conv, need, "agents", (m) => {
          done += 1;
          deliveries += m.delivered + m.echoes;
          lastDone = now();
          ack.push(m.tAck - m.t0);
          if (m.tDeliver) all.push(m.tDeliver - m.t0);
          next();
        });
      };
      next();
    }
    setTimeout(() => resolve(), seconds * 1000 + 5000);
  });
  const elapsed = (lastDone - t0) / 1000;
  inflight.clear();
  return { sent, done, deliveries, agents: need, elapsed_s: elapsed, msg_per_s: done / elapsed,
    deliveries_per_s: deliveries / elapsed, ack: summary(ack), last_delivery: summary(all) };
}

async function prepareIdle({ target, url, visitors }) {
  if (target !== "ours") { idleTokens = [...Array(visitors).keys()].map((i) => "idle-" + i); return { visitors }; }
  idleTokens = (await inBatches([...Array(visitors).keys()], 50,
    (i) => post(url, "/api/visitors", { name: "Idle " + i }))).map((v) => v.token);
  return { visitors: idleTokens.length };
}

async function idle({ url, n, concurrency, parser }) {
  const t0 = now();
  let failed = 0;
  await inBatches([...Array(n).keys()], concurrency, async (i) => {
    try {
      conns.push(await new Conn(url, "/customer", parser).connect({ token: idleTokens[i % idleTokens.length] }));
    } catch (err) {
      failed += 1;
      if (failed < 3) process.stderr.write("idle connect failed: " + err + "\n");
    }
  });
  return { n, failed, elapsed_s: (now() - t0) / 1000 };
}

async function closeAll() {
  const n = conns.length;
  for (const c of conns) c.close();
  conns = [];
  pairs = [];
  fan = null;
  inflight.clear();
  await sleep(500);
  return { closed: n };
}

const commands = { setup_pairs: setupPairs, closed: closedLoop, rate: rateLoop, setup_fanout: setupFanout,
  fanout: fanoutLoop, prepare_idle: prepareIdle, idle, close_all: closeAll };

const rl = createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on("line", (line) => {
  chain = chain.then(async () => {
    const msg = JSON.parse(line);
    if (msg.cmd === "quit") { for (const c of conns) c.close(); process.exit(0); }
    const cpu0 = process.cpuUsage();
    const w0 = now();
    let out;
    try {
      out = await commands[msg.cmd](msg);
    } catch (err) {
      out = { error: String(err && err.stack || err) };
    }
    const cpu = process.cpuUsage(cpu0);
    const wall = (now() - w0) * 1000;
    out.client_cpu = wall > 0 ? (cpu.user + cpu.system) / wall : 0;
    process.stdout.write(JSON.stringify({ cmd: msg.cmd, ...out }) + "\n");
  });
});
rl.on("close", () => { chain.then(() => { for (const c of conns) c.close(); process.exit(0); }); });
