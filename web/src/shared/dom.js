// Tiny DOM helpers. Text always goes through textContent / attributes, never through innerHTML:
// everything a customer, an agent or a file name says is rendered as text.

/**
 * Create an element. `props`: `class`, `text`, `title`, `on: {event: fn}`, `data: {key: value}`,
 * `style: {prop: value}`, any other key is set as an attribute (booleans toggle it).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  applyProps(el, props);
  append(el, children);
  return el;
}

function applyProps(el, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : value;
    else if (key === "text") el.textContent = String(value);
    else if (key === "on") for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
    else if (key === "data") for (const [k, v] of Object.entries(value)) el.dataset[k] = String(v);
    else if (key === "style") Object.assign(el.style, value);
    else if (key === "value") el.value = value;
    else if (key === "checked") el.checked = !!value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
}

/** Append children: nodes, strings (as text nodes), arrays, skipping null/false. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const SVG = "http://www.w3.org/2000/svg";

// Icons drawn for this project: 24x24 stroke shapes (path data written by hand).
const ICONS = {
  chat: ["M4 5h16v11H10l-5 4v-4H4z"],
  check: ["M5 12.5l4.5 4.5L19 7.5"],
  redirect: ["M4 17v-3a5 5 0 0 1 5-5h11", "M15 4l5 5-5 5"],
  image: ["M3 5h18v14H3z", "M3 16l5-5 4 4 3-3 6 6", "c:16 9 1.6"],
  video: ["M3 7h12v10H3z", "M15 10.5l6-3.5v10l-6-3.5"],
  audio: ["M9 18V6l10-2v12", "c:6.5 18 2.5", "c:16.5 16 2.5"],
  file: ["M6 3h8l4 4v14H6z", "M14 3v4h4", "M9 12h6M9 16h6"],
  article: ["M3 5h7a2 2 0 0 1 2 2v13a2 2 0 0 0-2-2H3z", "M21 5h-7a2 2 0 0 0-2 2v13a2 2 0 0 1 2-2h7z"],
  flow: ["c:6 6 2.2", "c:18 12 2.2", "c:6 18 2.2", "M8.2 6H13a3 3 0 0 1 3 3v1", "M8.2 18H13a3 3 0 0 0 3-3v-1"],
  cobrowse: ["M3 4h18v12H3z", "M12 10l7 3-3 1-1 3z", "M8 20h5"],
  chatblock: ["M4 6h16", "M4 11h11", "M4 16h14", "M4 21h8"],
  phone: ["M5 3.5h3.5l2 5-2.5 1.5a11 11 0 0 0 6 6l1.5-2.5 5 2V19a2 2 0 0 1-2 2A17 17 0 0 1 3 5.5a2 2 0 0 1 2-2z"],
  camera: ["M2.5 7h13v10h-13z", "M15.5 10.5l6-3.5v10l-6-3.5"],
  desktop: ["M3 4h18v12H3z", "M8 20h8", "M12 16v4"],
  screen: ["M3 4h18v12H3z", "M8 20h8", "M12 16v4", "M12 13V7", "M9 9.5l3-3 3 3"],
  conference: ["c:8 8 3", "M2.5 20a5.5 5.5 0 0 1 11 0", "c:17 9 2.5", "M14.5 15a4.5 4.5 0 0 1 7 4"],
  chevronDown: ["M6 9l6 6 6-6"],
  chevronUp: ["M6 15l6-6 6 6"],
  settings: ["c:12 12 3", "M12 2.5v3M12 18.5v3M2.5 12h3M18.5 12h3M5.3 5.3l2.1 2.1M16.6 16.6l2.1 2.1M5.3 18.7l2.1-2.1M16.6 7.4l2.1-2.1"],
  user: ["c:12 8 4", "M4 21a8 8 0 0 1 16 0"],
  send: ["M3 11.5L21 3l-8.5 18-2-7.5z", "M10.5 13.5L21 3"],
  attach: ["M20 11.5l-8.2 8.2a5 5 0 0 1-7-7L13 4.5a3.3 3.3 0 0 1 4.7 4.7l-8.2 8.2a1.7 1.7 0 0 1-2.4-2.4L14.5 7.5"],
  close: ["M6 6l12 12", "M18 6L6 18"],
  search: ["c:10.5 10.5 6", "M15 15l5.5 5.5"],
  bell: ["M6 16V11a6 6 0 0 1 12 0v5l2 2H4z", "M10 21h4"],
  logout: ["M14 4h5v16h-5", "M10 8l-4 4 4 4", "M6 12h10"],
  inbox: ["M3 13l3-8h12l3 8v6H3z", "M3 13h5l1 3h6l1-3h5"],
  mine: ["c:12 8 4", "M4 21a8 8 0 0 1 16 0"],
  team: ["c:8 8 3", "M2.5 20a5.5 5.5 0 0 1 11 0", "c:17 9 2.5", "M14.5 15a4.5 4.5 0 0 1 7 4"],
  done: ["c:12 12 9", "M8 12.5l3 3 5-6"],
  stop: ["M7 7h10v10H7z"],
  note: ["M5 3h14v13l-5 5H5z", "M14 21v-5h5"],
  plus: ["M12 5v14", "M5 12h14"],
};

/** An inline SVG icon by name (see ICONS). */
export function icon(name, size = 20) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", String(size));
  svg.setAttribute("height", String(size));
  svg.setAttribute("fill", "none");
  svg.setAttribute("stroke", "currentColor");
  svg.setAttribute("stroke-width", "1.8");
  svg.setAttribute("stroke-linecap", "round");
  svg.setAttribute("stroke-linejoin", "round");
  svg.setAttribute("aria-hidden", "true");
  svg.classList.add("icon");
  for (const part of ICONS[name] || []) {
    let node;
    if (part.startsWith("c:")) {
      const [cx, cy, r] = part.slice(2).split(" ");
      node = document.createElementNS(SVG, "circle");
      node.setAttribute("cx", cx);
      node.setAttribute("cy", cy);
      node.setAttribute("r", r);
    } else {
      node = document.createElementNS(SVG, "path");
      node.setAttribute("d", part);
    }
    svg.append(node);
  }
  return svg;
}

/** A random client id for idempotent sends. */
export function clientId(prefix = "c") {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return prefix + "_" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Call `fn` at most once per `ms`, trailing. */
export function debounce(fn, ms) {
  let timer = null;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

/** A polite (or, for requests, assertive) announcement for screen readers, in a visually hidden region. */
export function announcer(parent) {
  const polite = h("div", { class: "sr-only", "aria-live": "polite", "aria-atomic": "false" });
  const assertive = h("div", { class: "sr-only", "aria-live": "assertive", "aria-atomic": "false" });
  parent.append(polite, assertive);
  const say = (region, text) => {
    const line = h("div", { text });
    region.append(line);
    setTimeout(() => line.remove(), 8000); // keep the region short; the text has been read by then
  };
  return {
    polite: (text) => say(polite, text),
    assertive: (text) => say(assertive, text),
  };
}
