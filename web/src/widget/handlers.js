// What the widget does when a request changes, per kind (co-browsing, calls, ...): media modules
// register `{onAccepted(widget, request), onUpdate(widget, request, previous), onSynced(widget, request)}`
// here (`onSynced`: every request of the conversation after a `conversation.sync`, e.g. after a reload).
export const requestHandlers = {};
