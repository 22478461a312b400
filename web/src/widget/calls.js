// Calls in the widget: the tab whose customer clicked Accept joins (Request desktop: the screen picker
// opens from that click), shows the call above the conversation, and every tab drops it when the request
// ends. Hang up ends a call; in a conference it leaves the room (the others go on).
import { Call, CALL_KINDS } from "../shared/media.js";
import mediaCss from "../shared/media.css";
import { requestHandlers } from "./handlers.js";

const LIVE = new Set(["accepted", "active"]);

class WidgetCalls {
  constructor(widget) {
    this.widget = widget;
    this.calls = new Map(); // request id -> Call
    this.el = document.createElement("div");
    this.el.className = "wcall";
    const style = document.createElement("style");
    style.textContent = mediaCss + "\n.wcall { display: flex; flex-direction: column; gap: 6px; padding: 8px; background: #0f1729; }"
      + "\n.wcall:empty { display: none; } .wcall .call { box-shadow: none; border-radius: 10px; }"
      + "\n.wcall .call--large .call__stage { min-height: 260px; }";
    widget.root.append(style);
    widget.activeBar.after(this.el);
    this.onPageHide = () => {
      for (const call of this.calls.values()) {
        const event = call.plan.conference ? "conference.leave" : "request.end";
        widget.hub.socket.emit(event, { request_id: call.id, reason: "page_closed" });
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

  /** Join `request` (this tab's customer just accepted it: we are inside the Accept click). */
  start(request) {
    if (this.calls.has(request.id) || !this.widget.hub) return;
    const w = this.widget;
    const conv = (w.model && w.model.conversation) || {};
    const call = new Call({
      hub: w.hub,
      request,
      role: "customer",
      lang: w.t.lang,
      selfName: (w.visitor && w.visitor.name) || "",
      remoteName: request.kind === "conference" ? "" : (conv.assignee && conv.assignee.name) || w.t("widget.agent"),
      onEnded: () => this.calls.delete(request.id),
      onShareRefused: () => {
        // no screen picked: the desktop request ends rather than staying accepted with nothing to see
        w.hub.call("request.end", { request_id: request.id, reason: "share_refused" }).catch(() => {});
      },
    });
    call.el.classList.add("call--compact");
    this.calls.set(request.id, call);
    this.el.append(call.el);
    if (!w.isOpen) w.setOpen(true);
    call.start(); // getDisplayMedia / getUserMedia first, while the click's activation lasts
  }

  onUpdate(request) {
    const call = this.calls.get(request.id);
    if (call && !LIVE.has(request.state)) call.destroy(request.state);
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
      if (widget.calls) widget.calls.onUpdate(request);
    },
  };
}
