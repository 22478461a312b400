// Calls in the widget: the tab whose customer clicked Accept joins, shows the call above the
// conversation, and every tab drops it when the request ends. Hang up ends a call; in a conference it
// leaves the room (the others go on). The camera, microphone or screen is asked for inside the Accept
// click itself (a capturing listener on the widget's root, before the widget answers the request):
// `getDisplayMedia` needs that user gesture, and the media is ready sooner.
//
// A reload does not end a call: the tab remembers its calls (sessionStorage), the server keeps its place
// for the rejoin grace, and the reloaded page joins again by itself when the synced request is still
// live (a shared screen needs a click again: the call shows "Share my screen").
import { Call } from "../shared/media.js";
import { CALL_KINDS, acquire, joinedCalls, plan, rememberCall } from "../shared/callplan.js";
import mediaCss from "../shared/media.css";
import { requestHandlers } from "./handlers.js";

const LIVE = new Set(["accepted", "active"]);

const PREPARED_TTL_MS = 30000;

class WidgetCalls {
  constructor(widget) {
    this.widget = widget;
    this.calls = new Map(); // request id -> Call
    this.prepared = new Map(); // request id -> {media: acquire() promise, timer}
    widget.root.addEventListener("click", (e) => this.onClick(e), true);
    this.el = document.createElement("div");
    this.el.className = "wcall";
    const style = document.createElement("style");
    style.textContent = mediaCss + "\n.wcall { display: flex; flex-direction: column; gap: 6px; padding: 8px; background: #0f1729; }"
      + "\n.wcall:empty { display: none; } .wcall .call { box-shadow: none; border-radius: 10px; }"
      + "\n.wcall .call--large .call__stage { min-height: 260px; }";
    widget.root.append(style);
    widget.activeBar.after(this.el);
    this.onPageHide = () => {
      for (const call of [...this.calls.values()]) {
        if (call.leaves) widget.hub.socket.emit("rtc.leave", { request_id: call.id, reason: "page_closed" });
        else call.suspend(); // a reload comes back within the grace; a closed tab ends after it
      }
    };
    window.addEventListener("pagehide", this.onPageHide);
  }

  /** Calls in progress (tests and devtools). */
  list() {
    return [...this.calls.values()];
  }

  get(requestId) {
    return this.calls.get(requestId);
  }

  /** An Accept click on a call prompt: ask for the media now, within the gesture. */
  onClick(e) {
    const button = e.target instanceof Element ? e.target.closest(".prompt button[data-action=accept]") : null;
    const prompt = button && button.closest(".prompt");
    if (!prompt || !CALL_KINDS.has(prompt.dataset.kind) || this.prepared.has(prompt.dataset.id)) return;
    const id = prompt.dataset.id;
    const media = acquire(plan(prompt.dataset.kind, "customer"));
    media.catch(() => {}); // a refusal is handled by whoever uses it
    // not used (the answer failed, another tab won): release the devices
    const timer = setTimeout(() => this.release(id), PREPARED_TTL_MS);
    this.prepared.set(id, { media, timer });
  }

  release(id) {
    const entry = this.prepared.get(id);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.prepared.delete(id);
    entry.media.then(({ stream }) => stream && stream.getTracks().forEach((t) => t.stop()), () => {});
  }

  /** Join `request` (this tab's customer just accepted it, with media asked for in the click; or this
   * tab was in it before a reload: `rejoin`). */
  start(request, { rejoin = false } = {}) {
    if (this.calls.has(request.id) || !this.widget.hub) return;
    const w = this.widget;
    const conv = (w.model && w.model.conversation) || {};
    const call = new Call({
      hub: w.hub,
      request,
      role: "customer",
      lang: w.t.lang,
      selfName: (w.visitor && w.visitor.name) || "",
      selfId: w.visitor && w.visitor.id,
      remoteName: request.kind === "conference" ? "" : (conv.assignee && conv.assignee.name) || w.t("widget.agent"),
      onEnded: (c, reason) => {
        this.calls.delete(request.id);
        if (reason !== "page_closed") rememberCall(request, false);
      },
      onShareRefused: () => {
        // no screen picked: the desktop request ends rather than staying accepted with nothing to see
        w.hub.call("request.end", { request_id: request.id, reason: "share_refused" }).catch(() => {});
      },
    });
    call.el.classList.add("call--compact");
    this.calls.set(request.id, call);
    rememberCall(request, true);
    this.el.append(call.el);
    if (!w.isOpen) w.setOpen(true);
    const entry = this.prepared.get(request.id);
    if (entry) {
      clearTimeout(entry.timer);
      this.prepared.delete(request.id);
    }
    if (rejoin && call.plan.send.screen) call.ready(); // getDisplayMedia needs a click
    else call.start({ media: entry ? entry.media : null });
  }

  /** A request seen at sync (after a reload): join it again if this tab was in it and it lives. */
  onSynced(request) {
    if (LIVE.has(request.state) && !this.calls.has(request.id) && joinedCalls()[request.id]) {
      this.start(request, { rejoin: true });
    } else if (!LIVE.has(request.state) && joinedCalls()[request.id]) {
      rememberCall(request, false);
    }
  }

  onUpdate(request) {
    const call = this.calls.get(request.id);
    if (call && !LIVE.has(request.state)) call.destroy(request.state);
    if (!LIVE.has(request.state) && request.state !== "pending") this.release(request.id);
  }
}

function manager(widget) {
  if (!widget.calls) widget.calls = new WidgetCalls(widget);
  return widget.calls;
}

for (const kind of CALL_KINDS) {
  requestHandlers[kind] = {
    onAccepted(widget, request) {
      manager(widget).start(request);
    },
    onUpdate(widget, request) {
      manager(widget).onUpdate(request); // created at the prompt, so that the Accept click is seen
    },
    onSynced(widget, request) {
      manager(widget).onSynced(request);
    },
  };
}
