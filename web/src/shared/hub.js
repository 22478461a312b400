// The Socket.IO connection both pages use: calls with acks as promises, an outbox that resends
// unacknowledged messages with the same client_id after a reconnect, per-conversation highest seq,
// `conversation.sync` after every reconnect, and a retry (back-off with jitter, capped) of a connect the
// server refused with `rate_limited`.
import { io } from "socket.io-client";

export class HubError extends Error {
  constructor(code, message, details) {
    super(message || code);
    this.code = code;
    this.details = details;
  }
}

const CALL_TIMEOUT_MS = 10000;
// A connect the server refused with `rate_limited` is retried after an exponential back-off with
// "equal jitter" (half fixed, half random, so many refused clients do not come back together), capped;
// socket.io-client itself never retries a refused namespace connect.
const RATE_LIMITED_RETRY_BASE_MS = 1000;
const RATE_LIMITED_RETRY_MAX_MS = 30000;

/** Milliseconds to wait before the `attempt`-th (0-based) retry of a rate-limited connect. */
export function rateLimitedDelay(attempt, retryAfterS = 0, random = Math.random) {
  const ceiling = Math.min(RATE_LIMITED_RETRY_MAX_MS, RATE_LIMITED_RETRY_BASE_MS * 2 ** Math.min(attempt, 16));
  const jittered = ceiling / 2 + random() * (ceiling / 2);
  const floor = Number.isFinite(retryAfterS) && retryAfterS > 0 ? retryAfterS * 1000 : 0;
  return Math.min(RATE_LIMITED_RETRY_MAX_MS, Math.max(floor, jittered));
}

export class Hub {
  /**
   * @param {string} server  origin of the server ("" = this page's origin)
   * @param {string} namespace  "/agent" or "/customer"
   * @param {string} token
   */
  constructor(server, namespace, token) {
    this.socket = io((server || "") + namespace, {
      auth: { token },
      transports: ["websocket", "polling"],
      reconnectionDelay: 300,
      reconnectionDelayMax: 4000,
    });
    this.outbox = new Map(); // client_id -> {event, payload, resolve, reject}
    this.lastSeq = new Map(); // conversation_id -> highest seq seen
    // conversation_id -> seq up to which nothing is missing: it follows lastSeq only while the
    // conversation has been synced on the current connection, so a cut before that sync succeeds never
    // lets live events skip the missed range (the next reconnect syncs from here).
    this.resumeFrom = new Map();
    this.syncedHere = new Set(); // conversations synced on the current connection
    this.syncing = new Set(); // conversation ids to sync after a reconnect
    this.listeners = new Map();
    this.everConnected = false;
    this.closed = false;
    this.retryTimer = null; // pending retry of a rate-limited connect
    this.rateLimitedAttempts = 0; // consecutive rate-limited connects (reset on connect)
    this.socket.on("connect", () => this._onConnect());
    this.socket.on("disconnect", (reason) => {
      this.syncedHere.clear();
      this._emitLocal("status", { online: false, reason });
    });
    this.socket.on("connect_error", (err) => {
      const data = (err && err.data) || {};
      const code = data.code;
      const retryInMs = code === "rate_limited" ? this._retryRateLimited(data) : null;
      this._emitLocal("status", {
        online: false,
        error: code || "network",
        message: err && err.message,
        retrying: retryInMs !== null,
        retryInMs,
      });
      if (code === "unauthorized" || code === "forbidden") this._emitLocal("unauthorized", err);
    });
  }

  /** Listen to a server event or a local one (`status`, `connected`, `unauthorized`, `synced`). */
  on(event, fn) {
    if (!this.listeners.has(event)) {
      this.listeners.set(event, []);
      if (!LOCAL_EVENTS.has(event)) this.socket.on(event, (data) => this._emitLocal(event, data));
    }
    this.listeners.get(event).push(fn);
    return this;
  }

  _emitLocal(event, data) {
    for (const fn of this.listeners.get(event) || []) {
      try {
        fn(data);
      } catch (err) {
        console.error("handler for", event, "failed", err);
      }
    }
  }

  get connected() {
    return this.socket.connected;
  }

  /** emit(event, payload) and resolve with the ack's result, or reject with a HubError. */
  call(event, payload = {}, timeoutMs = CALL_TIMEOUT_MS) {
    return new Promise((resolve, reject) => {
      this.socket.timeout(timeoutMs).emit(event, payload, (err, res) => {
        if (err) return reject(new HubError("timeout", "the server did not answer"));
        if (!res || res.ok !== true) {
          const e = (res && res.error) || {};
          return reject(new HubError(e.code || "internal", e.message || "request failed", e.details));
        }
        resolve(res);
      });
    });
  }

  /**
   * Send a message through the outbox: kept until acknowledged, resent with the same client_id
   * after every reconnect (the server stores it once). Resolves with the stored message.
   */
  send(event, payload) {
    return new Promise((resolve, reject) => {
      const entry = { event, payload, resolve, reject, inFlight: false };
      this.outbox.set(payload.client_id, entry);
      this._flushOne(payload.client_id, entry);
    });
  }

  _flushOne(id, entry) {
    if (!this.socket.connected || entry.inFlight) return;
    entry.inFlight = true;
    this.call(entry.event, entry.payload).then(
      (res) => {
        this.outbox.delete(id);
        if (res.message) this.seen(res.message.conversation_id, res.message.seq);
        entry.resolve(res);
      },
      (err) => {
        entry.inFlight = false;
        if (err.code === "timeout") return; // stays queued: resent on the next connect
        this.outbox.delete(id);
        entry.reject(err);
      },
    );
  }

  /** Record that `seq` of `conversationId` has been seen; returns true if it is new. */
  seen(conversationId, seq) {
    const prev = this.lastSeq.get(conversationId) || 0;
    if (seq > prev) this.lastSeq.set(conversationId, seq);
    if (this.syncedHere.has(conversationId) && seq > (this.resumeFrom.get(conversationId) || 0)) {
      this.resumeFrom.set(conversationId, seq);
    }
    return seq > prev;
  }

  /** Keep `conversationId` in sync after reconnects. */
  track(conversationId) {
    this.syncing.add(conversationId);
    if (!this.lastSeq.has(conversationId)) this.lastSeq.set(conversationId, 0);
  }

  untrack(conversationId) {
    this.syncing.delete(conversationId);
  }

  /** `conversation.sync` from the highest seq seen; emits a local `synced` event with the result. */
  async sync(conversationId, afterSeq) {
    const after = afterSeq ?? this.resumeFrom.get(conversationId) ?? 0;
    const res = await this.call("conversation.sync", { conversation_id: conversationId, after_seq: after });
    for (const m of res.messages) this.seen(conversationId, m.seq);
    if (this.socket.connected && !res.has_more && after <= (this.resumeFrom.get(conversationId) || 0)) {
      this.syncedHere.add(conversationId);
      this.resumeFrom.set(conversationId, this.lastSeq.get(conversationId) || 0);
    }
    this._emitLocal("synced", { conversationId, ...res });
    return res;
  }

  /** Schedule another connect after a `rate_limited` refusal; returns the delay in ms. */
  _retryRateLimited(data) {
    clearTimeout(this.retryTimer);
    const retryAfterS = Number((data.details && data.details.retry_after_s) || 0);
    const delay = rateLimitedDelay(this.rateLimitedAttempts++, retryAfterS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.closed && !this.socket.connected) this.socket.connect();
    }, delay);
    return delay;
  }

  async _onConnect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.rateLimitedAttempts = 0;
    const reconnect = this.everConnected;
    this.everConnected = true;
    this._emitLocal("status", { online: true, reconnect });
    for (const [id, entry] of this.outbox) {
      entry.inFlight = false;
      this._flushOne(id, entry);
    }
    if (reconnect) {
      for (const id of this.syncing) this._resync(id);
    }
    this._emitLocal("connected", { reconnect });
  }

  /** Sync from the resume mark, retrying while this connection lasts and the sync keeps failing. */
  _resync(conversationId, attempt = 0) {
    this.sync(conversationId).catch((err) => {
      console.warn("sync failed", conversationId, err);
      if (this.socket.connected && this.syncing.has(conversationId) && !this.syncedHere.has(conversationId)) {
        setTimeout(() => this._resync(conversationId, attempt + 1), Math.min(500 * 2 ** attempt, 8000));
      }
    });
  }

  close() {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.socket.close();
  }
}

const LOCAL_EVENTS = new Set(["status", "connected", "unauthorized", "synced"]);
