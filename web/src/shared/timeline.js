// A conversation as the page knows it: messages by seq, local pending sends by client_id, requests.

const LIVE = new Set(["pending", "accepted", "active"]);

export function isLive(request) {
  return LIVE.has(request.state);
}

export class ConversationModel {
  constructor(conversation) {
    this.conversation = conversation;
    this.messages = new Map(); // seq -> message
    this.pending = new Map(); // client_id -> local message
    this.requests = new Map(); // id -> request
    this.loaded = false;
  }

  get id() {
    return this.conversation.id;
  }

  get lastSeq() {
    let max = 0;
    for (const seq of this.messages.keys()) if (seq > max) max = seq;
    return max;
  }

  /** Add a stored message; returns true if it was not known yet. */
  add(message) {
    if (message.client_id) this.pending.delete(message.client_id);
    const known = this.messages.has(message.seq);
    this.messages.set(message.seq, message);
    return !known;
  }

  addPending(local) {
    this.pending.set(local.client_id, { ...local, pending: true });
  }

  failPending(clientId) {
    const p = this.pending.get(clientId);
    if (p) p.failed = true;
  }

  setRequest(request) {
    const prev = this.requests.get(request.id);
    if (prev && prev.updated_at && request.updated_at && prev.updated_at > request.updated_at) return false;
    this.requests.set(request.id, request);
    return true;
  }

  /** Messages in seq order, then pending ones in send order. */
  ordered() {
    const stored = [...this.messages.values()].sort((a, b) => a.seq - b.seq);
    return [...stored, ...this.pending.values()];
  }

  liveRequests() {
    return [...this.requests.values()].filter(isLive);
  }
}
