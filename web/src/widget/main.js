// The customer widget: one <script src=".../widget.js" data-server data-locale data-team> tag on any
// site. Everything lives in a shadow DOM (its own styles, no leaks either way).
import { Widget } from "./widget.js";
import { pickLanguage } from "../shared/i18n.js";
import widgetCss from "./widget.css";
import messagesCss from "../shared/messages.css";
import a11yCss from "../shared/a11y.css";
import "./cobrowse.js"; // registers requestHandlers.cobrowse
import "./calls.js"; // registers requestHandlers for call, video, desktop, show_screen, conference

(function boot() {
  const script = document.currentScript || document.querySelector("script[src*='widget.js']");
  if (window.__rtcEngageWidget) return; // loaded twice: keep the first
  const attr = (name) => (script && script.getAttribute("data-" + name)) || "";
  let server = attr("server");
  if (!server && script && script.src) server = new URL(script.src, location.href).origin;
  server = (server || location.origin).replace(/\/+$/, "");
  const options = {
    server,
    // the site's choice (data-locale), else the visitor's browser language
    locale: pickLanguage(attr("locale"), navigator.languages || [], navigator.language),
    team: attr("team"),
    name: attr("name"),
    email: attr("email"),
  };
  const start = () => {
    const host = document.createElement("div");
    host.id = "rtc-engage-widget";
    host.className = "rr-block"; // never co-browse the widget itself
    document.body.appendChild(host);
    const root = host.attachShadow({ mode: "open" });
    const style = document.createElement("style");
    style.textContent = messagesCss + "\n" + a11yCss + "\n" + widgetCss;
    root.appendChild(style);
    const widget = new Widget(root, options);
    window.__rtcEngageWidget = widget;
    widget.start();
  };
  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
