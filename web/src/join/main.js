// The conference join page: `/join/?t=<link token>` from an agent's "Invite link". The guest types a
// name, exchanges the link for a guest token (POST /api/conference/join), connects to /customer with
// it and joins the room with camera and microphone (shared/media.js); Leave leaves the room.
import { h, replace } from "../shared/dom.js";
import { Hub } from "../shared/hub.js";
import { Call } from "../shared/media.js";
import { browserLanguage, translator } from "../shared/i18n.js";

// the guest's browser language; the words are the pages' catalogue (../shared/locales, keys `join.<key>`)
const tr = translator(browserLanguage());
const lang = tr.lang;
const t = (key, params = {}) => tr("join." + key, params);

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error((data.error && data.error.message) || "HTTP " + res.status);
  return data;
}

class JoinPage {
  constructor(root) {
    this.root = root;
    this.link = new URLSearchParams(location.search).get("t") || "";
    this.name = sessionStorage.getItem("rtc-engage.guest-name") || "";
    this.call = null;
    this.hub = null;
    window.__join = this; // tests and devtools
  }

  async start() {
    document.documentElement.lang = lang;
    document.title = t("title");
    if (!this.link) return this.message(t("bad_link"));
    try {
      this.info = await api("GET", "/api/conference/join?t=" + encodeURIComponent(this.link));
    } catch (err) {
      return this.message(err.message || t("bad_link"));
    }
    this.form();
  }

  message(text, again = false) {
    replace(this.root, h("div", { class: "join__card" },
      h("h1", { text: t("title") }),
      h("p", { class: "join__message", text }),
      again ? h("button", { class: "join__btn", type: "button", on: { click: () => this.form() } }, t("rejoin")) : null));
  }

  form() {
    const host = this.info && this.info.host && this.info.host.name;
    const input = h("input", { type: "text", name: "name", maxlength: "80", required: true, autocomplete: "name", value: this.name });
    const error = h("div", { class: "join__error", role: "alert" });
    const button = h("button", { class: "join__btn", type: "submit", text: t("join") });
    const form = h("form", { class: "join__card", on: { submit: (e) => {
      e.preventDefault();
      this.join(input.value.trim(), button, error);
    } } },
      h("h1", { text: t("title") }),
      h("p", { text: host ? t("invite", { host }) : t("invite_anon") }),
      h("label", {}, t("name"), input),
      error, button);
    replace(this.root, form);
    input.focus();
  }

  async join(name, button, error) {
    if (!name) return;
    button.disabled = true;
    button.textContent = t("joining");
    error.textContent = "";
    let grant;
    try {
      grant = await api("POST", "/api/conference/join", { t: this.link, name });
    } catch (err) {
      error.textContent = err.message;
      button.disabled = false;
      button.textContent = t("join");
      return;
    }
    this.name = name;
    sessionStorage.setItem("rtc-engage.guest-name", name);
    this.hub = new Hub("", "/customer", grant.token);
    const call = (this.call = new Call({
      hub: this.hub,
      request: { id: grant.request_id, kind: "conference" },
      role: "guest",
      lang,
      selfName: name,
      onHangup: (c) => c.hub.call("rtc.leave", { request_id: c.id }),
      onEnded: (c, reason) => this.ended(reason === "hangup" ? t("left") : t("ended")),
      onPeerGone: (c) => c.destroy("ended"),
    }));
    replace(this.root, h("div", { class: "join__room" }, call.el));
    window.addEventListener("pagehide", () => {
      if (this.call && this.call.state !== "ended") this.hub.socket.emit("rtc.leave", { request_id: grant.request_id });
    });
    await new Promise((resolve) => (this.hub.connected ? resolve() : this.hub.on("connected", resolve)));
    await call.start();
  }

  ended(text) {
    if (this.hub) this.hub.close();
    this.hub = null;
    this.call = null;
    this.message(text, true);
  }
}

new JoinPage(document.getElementById("root")).start();
