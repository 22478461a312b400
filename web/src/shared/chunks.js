// The chunk envelope of data channel messages, the same both ways as rtc_server/media/chunks.py.
//
// Chromium and aiortc refuse data channel messages above 262,144 bytes. A JSON text whose UTF-8
// encoding is larger travels as consecutive text messages, each one an envelope
//   {"t": "chunk", "id": "<message id, 1-64 chars>", "i": <0-based index>, "n": <count>, "d": "<piece>"}
// where the `d` of pieces 0..n-1 concatenated is the original JSON text. Pieces are at most
// 65,536 UTF-16 code units (never splitting a surrogate pair), which keeps every envelope under the
// limit: at most 3 UTF-8 bytes per code unit, 2 for an escaped quote or backslash.

export const MAX_MESSAGE_BYTES = 262144;
export const PIECE_CHARS = 65536;
export const MAX_PIECES = 1024;
export const MAX_REASSEMBLED_CHARS = 32 * 1024 * 1024;

/** The UTF-8 length of a well-formed string, without encoding it. */
export function utf8Length(text) {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    bytes += c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c <= 0xdfff ? 2 : 3; // a surrogate pair: 4
  }
  return bytes;
}

/** Whether a JSON text fits in one data channel message. */
export function fits(text) {
  return text.length * 3 <= MAX_MESSAGE_BYTES || utf8Length(text) <= MAX_MESSAGE_BYTES;
}

/** Whether a parsed message is a chunk envelope. */
export function isChunk(message) {
  return !!message && typeof message === "object" && message.t === "chunk";
}

/** Splits outgoing JSON texts into envelopes when they do not fit in one message. */
export class ChunkWriter {
  constructor(prefix = "c") {
    this.prefix = prefix + Math.random().toString(36).slice(2, 8) + "-";
    this.count = 0;
  }

  /** The messages to send for `text`: the text itself, or its chunk envelopes. */
  messages(text) {
    if (fits(text)) return [text];
    const pieces = [];
    for (let start = 0; start < text.length; ) {
      let end = Math.min(start + PIECE_CHARS, text.length);
      const last = text.charCodeAt(end - 1);
      if (end < text.length && last >= 0xd800 && last <= 0xdbff) end -= 1; // keep surrogate pairs whole
      pieces.push(text.slice(start, end));
      start = end;
    }
    if (pieces.length > MAX_PIECES) throw new Error("message too large to send");
    const id = this.prefix + ++this.count;
    const n = pieces.length;
    return pieces.map((d, i) => JSON.stringify({ t: "chunk", id, i, n, d }));
  }
}

/** Reassembles the chunked messages of one channel (pieces of a message arrive in order). */
export class ChunkAssembler {
  constructor(maxChars = MAX_REASSEMBLED_CHARS) {
    this.maxChars = maxChars;
    this.reset();
  }

  reset() {
    this.id = null;
    this.parts = [];
    this.size = 0;
    this.count = 0;
  }

  /** Add one envelope; returns the whole JSON text after its last piece, else null.
   *  Throws (and forgets the partial message) on a broken sequence. */
  feed({ id, i, n, d }) {
    const fail = (reason) => {
      this.reset();
      return new Error("chunk dropped: " + reason);
    };
    if (typeof id !== "string" || !id || id.length > 64) throw fail("bad id");
    if (!Number.isInteger(n) || n < 1 || n > MAX_PIECES || !Number.isInteger(i) || i < 0 || i >= n) throw fail("bad i/n");
    if (typeof d !== "string") throw fail("bad piece");
    if (i === 0) {
      this.reset();
      this.id = id;
      this.count = n;
    } else if (id !== this.id || n !== this.count || i !== this.parts.length) {
      throw fail("out of sequence");
    }
    this.parts.push(d);
    this.size += d.length;
    if (this.size > this.maxChars) throw fail("too large");
    if (i < n - 1) return null;
    const text = this.parts.join("");
    this.reset();
    return text;
  }
}

/**
 * Reads one data channel's JSON messages, reassembling chunks: `onMessage(parsed)` for each whole
 * message. Malformed input is dropped (and logged), never thrown.
 */
export function jsonReceiver(onMessage) {
  const assembler = new ChunkAssembler();
  return (event) => {
    if (typeof event.data !== "string") return;
    let message;
    try {
      message = JSON.parse(event.data);
      if (isChunk(message)) {
        const whole = assembler.feed(message);
        if (whole === null) return;
        message = JSON.parse(whole);
      }
    } catch (err) {
      console.warn("data channel message dropped", err);
      return;
    }
    onMessage(message);
  };
}

/**
 * Sends JSON texts on one ordered data channel, chunked when needed, queueing while more than
 * `highWater` bytes wait in the channel's buffer (Chromium closes a channel whose buffer overflows).
 */
export class JsonSender {
  constructor(channel, { prefix = "c", highWater = 4 * 1024 * 1024, lowWater = 512 * 1024 } = {}) {
    this.channel = channel;
    this.writer = new ChunkWriter(prefix);
    this.queue = [];
    this.highWater = highWater;
    channel.bufferedAmountLowThreshold = lowWater;
    channel.addEventListener("bufferedamountlow", () => this.flush());
  }

  /** Queue `value` (an object, or a JSON text) for sending; false if the channel is not open. */
  send(value) {
    if (this.channel.readyState !== "open") return false;
    const text = typeof value === "string" ? value : JSON.stringify(value);
    for (const message of this.writer.messages(text)) this.queue.push(message);
    this.flush();
    return true;
  }

  flush() {
    while (this.queue.length && this.channel.readyState === "open" && this.channel.bufferedAmount <= this.highWater) {
      this.channel.send(this.queue.shift());
    }
  }

  /** Bytes (at most) waiting in this sender's queue. */
  get queued() {
    return this.queue.reduce((sum, m) => sum + m.length, 0);
  }
}
