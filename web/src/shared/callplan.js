// What a call is made of, apart from its UI (media.js) and its peer connection (rtc.js): the request
// kinds that are calls, what each side publishes and receives (`plan`), the local media
// (getUserMedia / getDisplayMedia), the transceivers a participant offers, and the calls this tab is
// in, remembered across a reload.

/** Request kinds that are calls (handled by the call UI). */
export const CALL_KINDS = new Set(["call", "video", "desktop", "show_screen", "conference"]);

/**
 * What `role` ("agent" | "customer" | "guest") publishes and receives in a request of `kind`:
 * `{send: {audio?, video?, screen?}, recv: [kinds on transceivers of its own offer], conference}`.
 * In a conference the server adds its own transceivers for every other participant.
 */
export function plan(kind, role) {
  switch (kind) {
    case "call":
      return { send: { audio: true }, recv: ["audio"], conference: false };
    case "video":
      return { send: { audio: true, video: true }, recv: ["audio", "video"], conference: false };
    case "desktop":
      return role === "customer" ? { send: { screen: true }, recv: [], conference: false }
        : { send: {}, recv: ["video"], conference: false };
    case "show_screen":
      return role === "agent" ? { send: { screen: true }, recv: [], conference: false }
        : { send: {}, recv: ["video"], conference: false };
    default:
      return { send: { audio: true, video: true }, recv: [], conference: true };
  }
}

/** Local media for a plan: `{stream, notice}` (notice: "no_camera" | "no_devices" when it had to fall back). */
export async function acquire(p) {
  if (p.send.screen) {
    // Must be the first thing a click handler does (getDisplayMedia needs the user's gesture).
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 15 }, audio: false });
    for (const track of stream.getVideoTracks()) track.contentHint = "detail";
    return { stream, notice: null };
  }
  if (!p.send.audio && !p.send.video) return { stream: null, notice: null };
  const video = p.send.video ? { width: { ideal: 640 }, height: { ideal: 480 } } : false;
  try {
    return { stream: await navigator.mediaDevices.getUserMedia({ audio: !!p.send.audio, video }), notice: null };
  } catch (err) {
    if (video && p.send.audio) {
      try {
        return { stream: await navigator.mediaDevices.getUserMedia({ audio: true }), notice: "no_camera" };
      } catch {
        // fall through: receive only
      }
    }
    console.warn("no camera/microphone", err);
    return { stream: null, notice: "no_devices" };
  }
}

/** Stop every track of `stream` (none: nothing). */
export function stopAll(stream) {
  if (stream) for (const t of stream.getTracks()) t.stop();
}

/**
 * The transceivers of a participant's own offer (ServerPeer's `setup`): `stream`'s tracks as plan `p`
 * says (`sendrecv` where it also receives that kind from the other side, else `sendonly`), `recvonly`
 * ones for what it receives without sending, and at least one section so that there is a transport
 * for the server's senders. A conference, or an extra agent (`p.viaServer`), receives everything on
 * transceivers the server adds.
 */
export function addCallTransceivers(pc, stream, p) {
  const tracks = stream ? stream.getTracks() : [];
  for (const track of tracks) {
    const direction = p.conference || p.viaServer || !p.recv.includes(track.kind) ? "sendonly" : "sendrecv";
    pc.addTransceiver(track, { direction, streams: [stream] });
  }
  for (const kind of p.viaServer ? [] : p.recv) {
    if (!tracks.some((t) => t.kind === kind)) pc.addTransceiver(kind, { direction: "recvonly" });
  }
  // Nothing to send nor receive on our own transceivers (a conference without devices): one section
  // anyway, so that there is a transport for the server's senders.
  if (!pc.getTransceivers().length) pc.addTransceiver("audio", { direction: "recvonly" });
}

// -- calls this tab is in, kept across a reload (sessionStorage) ----------------------------------------

const JOINED_KEY = "rtc-engage.calls";

/** The calls this tab was in: `{requestId: {id, kind, conversation_id}}`. */
export function joinedCalls() {
  try {
    return JSON.parse(sessionStorage.getItem(JOINED_KEY) || "{}") || {};
  } catch {
    return {};
  }
}

/** Remember (`on`) or forget that this tab is in the call of `request`. */
export function rememberCall(request, on) {
  try {
    const calls = joinedCalls();
    if (on) calls[request.id] = { id: request.id, kind: request.kind, conversation_id: request.conversation_id };
    else delete calls[request.id];
    sessionStorage.setItem(JOINED_KEY, JSON.stringify(calls));
  } catch {
    // storage refused (private mode, quota): no rejoin after a reload
  }
}

