// Small UI pieces: toasts, modal dialogs and drop-down menus, usable with the keyboard alone (Tab stays
// inside a dialog, Escape closes, focus returns to where it was; arrows move in a menu).
import { h, icon } from "../shared/dom.js";

/** A short message in the top-right corner (`kind`: info | error | success); errors are alerts. */
export function toast(app, text, kind = "info", ms = 4000) {
  const el = h("div", { class: "toast toast--" + kind, role: kind === "error" ? "alert" : "status" }, h("span", { text }));
  app.toasts.append(el);
  setTimeout(() => el.remove(), ms);
  return el;
}

const FOCUSABLE = "a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), select:not([disabled]), "
  + "textarea:not([disabled]), [tabindex]:not([tabindex='-1'])";

/** The elements of `root` that Tab reaches, in order. */
export function focusables(root) {
  return [...root.querySelectorAll(FOCUSABLE)].filter((el) => !el.closest("[hidden]") && el.getClientRects().length);
}

/** Keep Tab / Shift+Tab inside `root` (a modal dialog). */
export function trapTab(e, root) {
  if (e.key !== "Tab") return;
  const items = focusables(root);
  if (!items.length) return;
  const first = items[0];
  const last = items[items.length - 1];
  if (e.shiftKey && (document.activeElement === first || !root.contains(document.activeElement))) {
    e.preventDefault();
    last.focus();
  } else if (!e.shiftKey && document.activeElement === last) {
    e.preventDefault();
    first.focus();
  }
}

let dialogCount = 0;

/**
 * A modal dialog. `build(close)` returns the body; resolves when closed. Escape and the backdrop close
 * it; Tab cycles inside; the focus goes back to the element that had it. `closeLabel`: the close button's name.
 */
export function modal(title, build, { wide = false, className = "", closeLabel = "Close" } = {}) {
  let close;
  const opener = document.activeElement;
  const done = new Promise((resolve) => {
    const titleId = "dialog-title-" + ++dialogCount;
    const onKey = (e) => {
      if (e.key === "Escape") {
        e.preventDefault();
        e.stopPropagation();
        close();
      } else {
        trapTab(e, dialog);
      }
    };
    close = (value) => {
      document.removeEventListener("keydown", onKey, true);
      backdrop.remove();
      if (opener && opener.isConnected && opener.focus) opener.focus();
      resolve(value);
    };
    const dialog = h("div", { class: ["modal", wide && "modal--wide", className], role: "dialog", "aria-modal": "true",
      "aria-labelledby": titleId },
      h("header", { class: "modal__header" },
        h("h2", { id: titleId, text: title }),
        h("button", { class: "iconbtn", type: "button", "aria-label": closeLabel, title: closeLabel, on: { click: () => close() } },
          icon("close", 18))),
      h("div", { class: "modal__body" }, build((v) => close(v))));
    const backdrop = h("div", { class: "backdrop", on: { mousedown: (e) => e.target === backdrop && close() } }, dialog);
    document.addEventListener("keydown", onKey, true);
    document.body.append(backdrop);
    const first = dialog.querySelector("input, textarea, select, button.pick") || focusables(dialog)[0];
    if (first) first.focus();
  });
  return done;
}

/**
 * A drop-down menu under `anchor`: items `[{label, icon?, onSelect, className?}]`. The first item takes
 * the focus; arrows, Home and End move; Escape or Tab closes it and the focus returns to `anchor`.
 */
export function menu(anchor, items, { label = "" } = {}) {
  const rect = anchor.getBoundingClientRect();
  const close = (refocus = true) => {
    document.removeEventListener("mousedown", outside, true);
    el.remove();
    anchor.setAttribute("aria-expanded", "false");
    if (refocus) anchor.focus();
  };
  const outside = (e) => {
    if (!el.contains(e.target) && e.target !== anchor && !anchor.contains(e.target)) close(false);
  };
  const buttons = items.map((item) => h("button", { type: "button", class: ["menu__item", item.className], role: "menuitem",
    tabindex: "-1", on: { click: () => { close(); item.onSelect(); } } }, item.icon ? icon(item.icon, 18) : null,
  h("span", { text: item.label })));
  const onKey = (e) => {
    const i = buttons.indexOf(document.activeElement);
    const go = (n) => {
      e.preventDefault();
      buttons[(n + buttons.length) % buttons.length].focus();
    };
    if (e.key === "ArrowDown") go(i + 1);
    else if (e.key === "ArrowUp") go(i - 1);
    else if (e.key === "Home") go(0);
    else if (e.key === "End") go(buttons.length - 1);
    else if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      close();
    } else if (e.key === "Tab") close(false);
  };
  const el = h("div", { class: "menu", role: "menu", "aria-label": label || anchor.getAttribute("aria-label") || "",
    style: { top: rect.bottom + 6 + "px", left: Math.max(8, rect.right - 220) + "px" }, on: { keydown: onKey } }, buttons);
  document.body.append(el);
  anchor.setAttribute("aria-expanded", "true");
  buttons[0].focus();
  setTimeout(() => document.addEventListener("mousedown", outside, true), 0);
  return close;
}
