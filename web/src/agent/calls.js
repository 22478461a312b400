// Calls in the console: the agent who asked joins as soon as the customer accepts (Show screen: from the
// "Share my screen" click), other agents of the team join from the request chip or an invitation, and a
// conference's agents can add colleagues and create a join link for external participants. Calls live
// in a dock over the console, so switching conversations never interrupts them. A reload does not end a
// call: the tab remembers its calls (sessionStorage) and joins again those still live once it is back.
import { h } from "../shared/dom.js";
import { Call, callStrings, callIcon } from "../shared/media.js";
import { CALL_KINDS, joinedCalls, rememberCall } from "../shared/callplan.js";
import { requestHandlers } from "./conversation.js";
import { toast } from "./ui.js";

const LIVE = new Set(["accepted", "active"]);

export class AgentCalls {
  constructor(app) {
    this.app = app;
    this.calls = new Map(); // request id -> Call
    this.autoJoined = new Set();
    this.invites = new Map(); // request id -> invitation card
    this.s = callStrings(app.t.lang);
    this.dock = h("div", { class: "calldock", "aria-live": "polite" });
    document.body.append(this.dock);
    this.dock.addEventListener("pointerdown", (e) => this.drag(e));
    app.hub.on("request.updated", ({ request }) => this.onRequest(request));
    app.hub.on("conference.invite", (payload) => this.onInvite(payload));
    this.onPageHide = () => this.leaveAll({ suspend: true });
    window.addEventListener("pagehide", this.onPageHide);
    this.recordings = false; // the server allows recorded calls (rtc.config)
    this.recordNext = false; // the agent's "Record" toggle
    app.hub.call("rtc.config", {}).then((res) => {
      this.recordings = !!(res && res.recordings);
      if (this.recordings) this.refreshChips();
    }, () => {});
    this.rejoin();
  }

  // -- recording -------------------------------------------------------------------------------------------
  /** The "Record" toggle of the conversation's request buttons (only when the server records). */
  recordToggle(open) {
    if (!this.recordings) return null;
    const label = this.s("record_label");
    const btn = h("button", { class: ["reqbtn", "reqbtn--rec", this.recordNext && "is-on"], type: "button", title: label,
      "aria-label": label, "aria-pressed": String(this.recordNext), disabled: !open, data: { action: "record" },
      on: { click: () => {
        this.recordNext = !this.recordNext;
        btn.setAttribute("aria-pressed", String(this.recordNext));
        btn.classList.toggle("is-on", this.recordNext);
      } } }, h("span", { class: "reqbtn__rec", text: "REC" }));
    return btn;
  }

  /** Whether a new request of `kind` asks to be recorded (the toggle is on; calls only). */
  recordFor(kind) {
    return this.recordings && this.recordNext && CALL_KINDS.has(kind);
  }

  /** Download the recording of an ended recorded request (agents of the conversation). */
  async downloadRecording(request) {
    const url = "/api/requests/" + encodeURIComponent(request.id) + "/recording";
    try {
      const res = await fetch(url, { headers: { Authorization: "Bearer " + this.app.token } });
      if (res.status === 404) return toast(this.app, this.s("recording_not_ready"), "error");
      if (!res.ok) throw new Error("HTTP " + res.status);
      const blob = await res.blob();
      const a = h("a", { href: URL.createObjectURL(blob), download: "recording-" + request.id + ".webm", hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60000);
    } catch (err) {
      toast(this.app, err.message, "error");
    }
  }

  /** After a reload: join again the calls this tab was in, if their requests still live. */
  async rejoin() {
    for (const entry of Object.values(joinedCalls())) {
      try {
        const sync = await this.app.hub.call("conversation.sync", { conversation_id: entry.conversation_id, after_seq: 2147483647 });
        const request = (sync.requests || []).find((r) => r.id === entry.id);
        if (request && LIVE.has(request.state)) {
          if (sync.conversation && !this.app.convs.has(sync.conversation.id)) this.app.convs.set(sync.conversation.id, sync.conversation);
          this.join(request);
        } else {
          rememberCall(entry, false);
        }
      } catch (err) {
        console.warn("rejoining a call failed", err);
        rememberCall(entry, false);
      }
    }
  }

  /** Calls in progress (tests and devtools). */
  list() {
    return [...this.calls.values()];
  }

  get(requestId) {
    return this.calls.get(requestId);
  }

  onRequest(request) {
    if (!CALL_KINDS.has(request.kind)) return;
    const call = this.calls.get(request.id);
    if (call && !LIVE.has(request.state)) call.destroy(request.state);
    if (!LIVE.has(request.state)) this.dropInvite(request.id);
    if (request.state === "accepted" && !call && request.requested_by === this.app.me.id && !this.autoJoined.has(request.id)) {
      this.autoJoined.add(request.id);
      this.join(request);
    }
  }

  /** Join the call of `request` in this tab (one tab per agent: a Web Lock keeps the others out). */
  join(request) {
    if (this.calls.has(request.id)) return this.calls.get(request.id);
    const app = this.app;
    const conv = app.convs.get(request.conversation_id) || { id: request.conversation_id, visitor: request.visitor };
    let release = () => {};
    const call = new Call({
      hub: app.hub,
      request,
      role: "agent",
      lang: app.t.lang,
      selfName: app.me.name,
      selfId: app.me.id,
      remoteName: request.kind === "conference" ? "" : app.visitorName(conv),
      // someone else's call (a colleague's video call, a supervisor): join without taking it over
      extra: request.kind !== "conference" && request.requested_by !== app.me.id,
      extras: request.kind === "conference" ? (c, btn) => this.conferenceButtons(c, btn, conv) : null,
      onEnded: (c, reason) => {
        this.calls.delete(request.id);
        if (reason !== "page_closed") rememberCall(request, false);
        release();
        this.refreshChips();
      },
      onShareRefused: () => toast(app, this.s("share_refused"), "error"),
      onPeerGone: (c) => c.destroy("dropped"), // the chip offers Join again while the request lives
    });
    this.calls.set(request.id, call);
    rememberCall(request, true);
    this.dock.append(call.el);
    const begin = () => (call.plan.send.screen ? call.ready() : call.start());
    if (navigator.locks && navigator.locks.request) {
      navigator.locks.request("rtc-engage.call:" + request.id, { ifAvailable: true }, (lock) => {
        if (!lock) {
          call.destroy("other_tab"); // another tab of this agent is in the call
          return null;
        }
        begin();
        return new Promise((resolve) => (release = resolve));
      });
    } else {
      begin();
    }
    this.refreshChips();
    return call;
  }

  /** Move the dock by a call's header (it floats over the conversation). */
  drag(e) {
    if (e.button !== 0 || !e.target.closest(".call__head") || e.target.closest("button")) return;
    const dock = this.dock;
    const start = { x: e.clientX, y: e.clientY, right: parseFloat(getComputedStyle(dock).right),
      bottom: parseFloat(getComputedStyle(dock).bottom) };
    const move = (ev) => {
      const right = Math.min(Math.max(0, start.right - (ev.clientX - start.x)), window.innerWidth - 120);
      const bottom = Math.min(Math.max(0, start.bottom - (ev.clientY - start.y)), window.innerHeight - 80);
      dock.style.right = right + "px";
      dock.style.bottom = bottom + "px";
    };
    const up = () => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
    e.preventDefault();
  }

  /** Hang up everything and remove the dock (on logout). */
  close() {
    this.leaveAll();
    window.removeEventListener("pagehide", this.onPageHide);
    this.dock.remove();
  }

  /** Best effort when the page goes away: leave conferences and calls joined on the side; a 1:1 call
   * is ended (logout) or, when the page just goes away (`suspend`: a reload), kept for the server's
   * rejoin grace. */
  leaveAll({ suspend = false } = {}) {
    for (const call of [...this.calls.values()]) {
      if (suspend && !call.leaves) {
        call.suspend();
        continue;
      }
      const event = call.leaves ? "rtc.leave" : "request.end";
      this.app.hub.socket.emit(event, { request_id: call.id, reason: "page_closed" });
      call.destroy("ended");
    }
  }

  // -- request chips: "Join" for a live call this tab is not in -----------------------------------------
  decorate(request) {
    const pane = this.app.pane;
    if (pane && pane.id === request.conversation_id && request.record) this.decorateRecorded(pane, request);
    if (!pane || pane.id !== request.conversation_id || !LIVE.has(request.state) || this.calls.has(request.id)) return;
    const chip = pane.requestsEl.querySelector(`.reqchip[data-id="${CSS.escape(request.id)}"]`);
    if (!chip || chip.querySelector("[data-action=join-call]")) return;
    const action = chip.querySelector("button");
    chip.insertBefore(h("button", { class: "btn btn--small btn--primary", type: "button", data: { action: "join-call" },
      on: { click: () => this.join(request) } }, this.s("join")), action);
  }

  /** A recorded request's chip: "REC" while it lives, "Download recording" once it ended. */
  decorateRecorded(pane, request) {
    const chip = pane.requestsEl.querySelector(`.reqchip[data-id="${CSS.escape(request.id)}"]`);
    if (!chip) return;
    if (!chip.querySelector(".reqchip__rec")) {
      chip.insertBefore(h("span", { class: "reqchip__rec", title: this.s("recording"), text: "REC" }), chip.querySelector(".reqchip__kind"));
    }
    if (request.state === "ended" && !chip.querySelector("[data-action=download-recording]")) {
      chip.insertBefore(h("button", { class: "btn btn--small", type: "button", data: { action: "download-recording" },
        on: { click: () => this.downloadRecording(request) } }, this.s("download_recording")), chip.querySelector("button"));
    }
  }

  refreshChips() {
    const pane = this.app.pane;
    if (pane) pane.renderRequests();
  }

  // -- conference: colleagues and guests -----------------------------------------------------------------
  conferenceButtons(call, btn, conv) {
    return [
      btn("add-people", "plus", this.s("add"), () => this.togglePop(call, "people", () => this.peoplePop(call, conv))),
      btn("invite-link", "link", this.s("link"), () => this.togglePop(call, "link", () => this.linkPop(call))),
    ];
  }

  togglePop(call, name, build) {
    const open = call.el.querySelector(".callpop");
    if (open) open.remove();
    if (open && open.dataset.pop === name) return;
    const pop = build();
    pop.dataset.pop = name;
    call.el.insertBefore(pop, call.controlsEl);
  }

  peoplePop(call, conv) {
    const app = this.app;
    const teamId = (app.convs.get(conv.id) || conv).team_id;
    const colleagues = [...app.agents.values()]
      .filter((a) => a.id !== app.me.id && (a.is_admin || (a.team_ids || []).includes(teamId)))
      .sort((a, b) => (a.status === "online" ? 0 : 1) - (b.status === "online" ? 0 : 1) || a.name.localeCompare(b.name));
    const rows = colleagues.map((a) => h("div", { class: "callpop__row", data: { agent: a.id } },
      h("span", { class: "callpop__presence callpop__presence--" + (a.status || "offline") }),
      h("span", { class: "callpop__name", text: a.name }),
      h("button", { class: "callbtn callbtn--primary", type: "button", data: { action: "invite" }, on: { click: async (e) => {
        e.currentTarget.disabled = true;
        try {
          await app.hub.call("conference.invite", { request_id: call.id, agent_id: a.id });
          toast(app, this.s("invited", { name: a.name }), "success");
        } catch (err) {
          toast(app, err.message, "error");
          e.currentTarget.disabled = false;
        }
      } } }, callIcon("plus", 16))));
    return h("div", { class: "callpop" }, rows.length ? rows : h("div", { class: "callpop__help", text: this.s("nobody") }));
  }

  linkPop(call) {
    const input = h("input", { type: "text", readonly: true, class: "calllink__url", "aria-label": this.s("link") });
    const help = h("div", { class: "callpop__help" });
    const copy = h("button", { class: "callbtn", type: "button", data: { action: "copy-link" }, on: { click: async () => {
      input.select();
      try {
        await navigator.clipboard.writeText(input.value);
      } catch {
        document.execCommand && document.execCommand("copy");
      }
      copy.textContent = this.s("copied");
    } } }, this.s("copy"));
    const pop = h("div", { class: "callpop" }, h("div", { class: "callpop__row" }, input, copy), help);
    fetch("/api/conference/" + encodeURIComponent(call.id) + "/links", {
      method: "POST",
      headers: { Authorization: "Bearer " + this.app.token, "Content-Type": "application/json" },
      body: "{}",
    }).then(async (res) => {
      const body = await res.json();
      if (!res.ok) throw new Error((body.error && body.error.message) || "HTTP " + res.status);
      input.value = body.url;
      const time = new Date(body.expires_at).toLocaleString(this.app.t.lang, { dateStyle: "short", timeStyle: "short" });
      help.textContent = this.s("link_help", { time });
      pop.dataset.ready = "1";
    }).catch((err) => {
      help.textContent = err.message;
    });
    return pop;
  }

  // -- invitations from colleagues ------------------------------------------------------------------------
  onInvite({ request, conversation_id: conversationId, visitor, from }) {
    if (this.calls.has(request.id) || this.invites.has(request.id)) return;
    const app = this.app;
    if (!app.convs.has(conversationId)) {
      app.convs.set(conversationId, { id: conversationId, visitor: visitor || {}, team_id: request.team_id });
    }
    const card = h("div", { class: "callinvite", role: "alertdialog", data: { request: request.id } },
      h("div", { class: "callinvite__text",
        text: this.s("invite", { from: from.name, customer: (visitor && visitor.name) || this.s("a_customer") }) }),
      h("div", { class: "callinvite__actions" },
        h("button", { class: "btn btn--small btn--ghost", type: "button", data: { action: "decline" },
          on: { click: () => this.dropInvite(request.id) } }, this.s("decline")),
        h("button", { class: "btn btn--small btn--primary", type: "button", data: { action: "join" }, on: { click: () => {
          this.dropInvite(request.id);
          this.join(request);
        } } }, this.s("join"))));
    this.invites.set(request.id, card);
    this.dock.prepend(card);
  }

  dropInvite(requestId) {
    const card = this.invites.get(requestId);
    if (card) card.remove();
    this.invites.delete(requestId);
  }
}

/** Start the console's call handling (after `app.start()`); `app.calls` is the manager. */
export function installCalls(app) {
  app.calls = new AgentCalls(app);
  return app.calls;
}

for (const kind of CALL_KINDS) {
  requestHandlers[kind] = (app, request) => {
    if (!app.calls) return;
    app.calls.decorate(request);
  };
}
