// Small UI pieces: toasts, modal dialogs and drop-down menus.
import { h, icon } from "../shared/dom.js";

/** A short message in the top-right corner (`kind`: info | error | success). */
export function toast(app, text, kind = "info", ms = 4000) {
  const el = h("div", { class: "toast toast--" + kind, role: "status" }, h("span", { text }));
  app.toasts.append(el);
  setTimeout(() => el.remove(), ms);
  return el;
}

/**
 * A modal dialog. `build(close)` returns the body; resolves when closed. Escape and the backdrop close it.
 */
export function modal(title, build, { wide = false, className = "" } = {}) {
  let close;
  const done = new Promise((resolve) => {
    const onKey = (e) => {
      if (e.key === "Escape") close();
    };
    close = (value) => {
      document.removeEventListener("keydown", onKey, true);
      backdrop.remove();
      resolve(value);
    };
    const dialog = h("div", { class: ["modal", wide && "modal--wide", className], role: "dialog", "aria-modal": "true",
      "aria-label": title },
      h("header", { class: "modal__header" },
        h("h2", { text: title }),
        h("button", { class: "iconbtn", type: "button", "aria-label": "Close", on: { click: () => close() } }, icon("close", 18))),
      h("div", { class: "modal__body" }, build((v) => close(v))));
    const backdrop = h("div", { class: "backdrop", on: { mousedown: (e) => e.target === backdrop && close() } }, dialog);
    document.addEventListener("keydown", onKey, true);
    document.body.append(backdrop);
    const first = dialog.querySelector("input, textarea, select, button.pick");
    if (first) first.focus();
  });
  return done;
}

/** A drop-down menu under `anchor`: items `[{label, icon?, onSelect, className?}]`. */
export function menu(anchor, items) {
  const rect = anchor.getBoundingClientRect();
  const close = () => {
    document.removeEventListener("mousedown", outside, true);
    el.remove();
  };
  const outside = (e) => {
    if (!el.contains(e.target)) close();
  };
  const el = h("div", { class: "menu", role: "menu", style: { top: rect.bottom + 6 + "px", left: Math.max(8, rect.right - 220) + "px" } },
    items.map((item) => h("button", { type: "button", class: ["menu__item", item.className], role: "menuitem",
      on: { click: () => { close(); item.onSelect(); } } }, item.icon ? icon(item.icon, 18) : null,
      h("span", { text: item.label }))));
  document.body.append(el);
  setTimeout(() => document.addEventListener("mousedown", outside, true), 0);
  return close;
}
