// What the widget does when a request changes, per kind (co-browsing, calls, ...): media modules
// register `{onAccepted(widget, request), onUpdate(widget, request, previous)}` here.
export const requestHandlers = {};
