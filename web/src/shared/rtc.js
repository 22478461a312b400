// One WebRTC peer connection between this page and the server's media plane, for one accepted
// request (co-browsing, calls, video, ...): the one negotiation of the pages. The signalling rides on
// the page's Hub (Socket.IO):
//
//   const peer = new ServerPeer(hub, requestId, {
//     setup(pc) { ... },            // before the first offer: add data channels, tracks, transceivers,
//                                   //   `track` listeners
//     onServerOffer(payload) { },   // optional: a server `rtc.offer` {sdp, type, streams} arrived
//                                   //   (called before it is answered; `streams` names publishers)
//     onServerAnswered(payload) { },// optional: that offer is applied and answered (`rtc.answer` acked)
//     onState(state) { },           // optional: pc.connectionState changes ("connected", "failed", ...)
//     onTransportEnd(state) { },    // optional: the DTLS transport closed or failed (the server closing
//                                   //   the connection is seen at once, not after the ~15 s ICE timeout)
//     onParticipant(payload) { },   // optional: `rtc.participant` events of this request
//                                   //   {type: "connected" | "reconnecting" | "rejoined" | ..., participant}
//   });
//   await peer.connect();           // rtc.config -> RTCPeerConnection({iceServers}) -> setup(pc)
//                                   //   -> offer (all ICE candidates in it) -> rtc.offer -> answer applied
//   await peer.renegotiate();       // after adding/removing tracks: a new client offer
//   await peer.inboundStats();      // inbound RTP figures (tests, diagnostics)
//   peer.close();                   // closes the connection (the server sees the peer gone)
//
// Server-sent `rtc.offer` events for this request (the server added or removed senders) are
// answered with `rtc.answer` automatically. The client is the polite peer: when the server refuses
// an offer with `conflict` / `reason: "glare"`, the client rolls back, answers the server's offer
// (which arrives as an event) and offers again. Negotiations run one at a time.
//
// A new peer for the same request (a reconnect, a reload's rejoin) replaces the previous one: the
// server replaces the participant's peer when a new connection offers.

const GATHER_TIMEOUT_MS = 3000;
const GLARE_RETRIES = 5;

/** hub -> Map(requestId -> ServerPeer): one `rtc.offer` and one `rtc.participant` listener per hub,
 * dispatching by request id. */
const peersByHub = new WeakMap();

function registry(hub) {
  let peers = peersByHub.get(hub);
  if (!peers) {
    peers = new Map();
    peersByHub.set(hub, peers);
    hub.on("rtc.offer", (payload) => {
      const peer = payload && peers.get(payload.request_id);
      if (peer) peer._onServerOffer(payload);
    });
    hub.on("rtc.participant", (payload) => {
      const peer = payload && peers.get(payload.request_id);
      if (peer) peer._onParticipant(payload);
    });
  }
  return peers;
}

export class ServerPeer {
  /**
   * @param {object} hub  the page's Hub (`call`, `on`)
   * @param {string} requestId  the accepted request
   * @param {{setup?: Function, onServerOffer?: Function, onServerAnswered?: Function, onState?: Function,
   *   onTransportEnd?: Function, onParticipant?: Function}} options
   */
  constructor(hub, requestId, { setup, onServerOffer, onServerAnswered, onState, onTransportEnd, onParticipant } = {}) {
    this.hub = hub;
    this.requestId = requestId;
    this.setup = setup;
    this.hooks = { onServerOffer, onServerAnswered, onParticipant };
    this.onState = onState;
    this.onTransportEnd = onTransportEnd;
    this.pc = null;
    this.closed = false;
    this._chain = Promise.resolve();
    this._offering = false;
    this._answeredCount = 0;
    this._answeredSeen = 0;
    this._onAnswered = null;
  }

  /** Create the connection and make the first offer; resolves once the server's answer is applied. */
  async connect() {
    if (this.pc) throw new Error("already connected");
    let iceServers = [];
    try {
      const res = await this.hub.call("rtc.config", {});
      iceServers = Array.isArray(res.ice_servers) ? res.ice_servers : [];
    } catch (err) {
      console.warn("rtc.config failed; no STUN/TURN servers", err);
    }
    if (this.closed) throw new Error("closed");
    const peers = registry(this.hub);
    const previous = peers.get(this.requestId);
    if (previous && previous !== this) previous.close();
    peers.set(this.requestId, this);
    this.pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
    this.pc.addEventListener("connectionstatechange", () => {
      if (this.onState) this.onState(this.pc.connectionState);
    });
    if (this.setup) this.setup(this.pc);
    await this.renegotiate();
    if (this.onTransportEnd && !this.closed) this._watchTransport();
  }

  /** Offer the current state of the connection to the server and apply its answer. */
  renegotiate() {
    return this._serial(() => this._offer());
  }

  async _offer() {
    const pc = this.pc;
    for (let attempt = 0; ; attempt++) {
      this._offering = true;
      this._answeredSeen = this._answeredCount;
      let answer;
      try {
        await pc.setLocalDescription(await pc.createOffer());
        await gathered(pc);
        if (this.closed) return;
        answer = await this.hub.call("rtc.offer", {
          request_id: this.requestId,
          sdp: pc.localDescription.sdp,
          type: "offer",
        }, 15000);
      } catch (err) {
        const glare = err && err.code === "conflict" && err.details && err.details.reason === "glare";
        if (!glare || attempt >= GLARE_RETRIES || this.closed) throw err;
        // The server's offer is outstanding and arrives as an event: once it is answered, offer again.
        if (pc.signalingState === "have-local-offer") await pc.setLocalDescription({ type: "rollback" });
        await this._answered(2000);
        continue;
      } finally {
        this._offering = false;
      }
      if (this.closed) return;
      await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
      return;
    }
  }

  /** Resolves when a server offer has been answered since the last call, or after `ms`. */
  _answered(ms) {
    if (this._answeredCount > this._answeredSeen) {
      this._answeredSeen = this._answeredCount;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this._onAnswered = () => {
        clearTimeout(timer);
        this._answeredSeen = this._answeredCount;
        resolve();
      };
    });
  }

  _onServerOffer(payload) {
    if (this.closed || !this.pc) return;
    this._hook("onServerOffer", payload);
    const pc = this.pc;
    const answerIt = async () => {
      if (this.closed) return;
      if (pc.signalingState === "have-local-offer") await pc.setLocalDescription({ type: "rollback" });
      await pc.setRemoteDescription({ type: "offer", sdp: payload.sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      await this.hub.call("rtc.answer", { request_id: this.requestId, sdp: pc.localDescription.sdp, type: "answer" });
      this._answeredCount += 1;
      if (this._onAnswered) this._onAnswered();
      this._onAnswered = null;
      this._hook("onServerAnswered", payload);
    };
    const failed = (err) => console.warn("rtc.answer failed", err);
    // A client offer waiting for the server is refused (glare) only once this offer is answered:
    // answer it now, not behind that offer.
    if (this._offering) answerIt().catch(failed);
    else this._serial(answerIt).catch(failed);
  }

  _onParticipant(payload) {
    if (!this.closed) this._hook("onParticipant", payload);
  }

  /** Call an optional hook; its errors are logged, never break the negotiation. */
  _hook(name, payload) {
    const fn = this.hooks[name];
    if (!fn) return;
    try {
      fn(payload);
    } catch (err) {
      console.error(err);
    }
  }

  /** The server closing the connection (DTLS close_notify) is "closed" at once; the ICE timeout that
   * would say it too takes about 15 s. */
  _watchTransport() {
    const pc = this.pc;
    const parts = [...pc.getSenders(), ...pc.getReceivers()];
    const transport = parts.map((p) => p.transport).find(Boolean);
    if (!transport) return;
    transport.addEventListener("statechange", () => {
      if (!this.closed && (transport.state === "closed" || transport.state === "failed")) {
        this.onTransportEnd(transport.state);
      }
    });
  }

  _serial(fn) {
    const run = this._chain.then(fn);
    this._chain = run.catch(() => {});
    return run;
  }

  /** Inbound RTP figures of this connection (see `inboundStats`). */
  inboundStats() {
    return inboundStats(this.pc);
  }

  /** Close the connection (idempotent). */
  close() {
    if (this.closed) return;
    this.closed = true;
    const peers = peersByHub.get(this.hub);
    if (peers && peers.get(this.requestId) === this) peers.delete(this.requestId);
    if (this.pc) {
      try {
        this.pc.close();
      } catch (err) {
        console.warn(err);
      }
    }
  }
}

/** Resolves once ICE gathering is complete (or after a timeout): the protocol has no trickle ICE. */
function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => pc.iceGatheringState === "complete" && done();
    const timer = setTimeout(done, GATHER_TIMEOUT_MS);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/** Inbound RTP figures of a peer connection: `{video: [{mid, framesDecoded, frameWidth, frameHeight}],
 * audio: [{mid, packetsReceived}]}` (empty when there is no open connection). */
export async function inboundStats(pc) {
  const out = { video: [], audio: [] };
  if (!pc || pc.connectionState === "closed") return out;
  (await pc.getStats()).forEach((r) => {
    if (r.type !== "inbound-rtp") return;
    if (r.kind === "video") {
      out.video.push({ mid: r.mid, framesDecoded: r.framesDecoded || 0, frameWidth: r.frameWidth || 0, frameHeight: r.frameHeight || 0 });
    } else if (r.kind === "audio") {
      out.audio.push({ mid: r.mid, packetsReceived: r.packetsReceived || 0 });
    }
  });
  return out;
}
