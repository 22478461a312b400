// The Profile & settings view: who I am, the console's language (saved with the agent through
// PATCH /api/me), presence (online/away), notification permission, ringtone test.
import { h, replace } from "../shared/dom.js";
import { LANGUAGES, errorText } from "../shared/i18n.js";
import { initials } from "../shared/render.js";
import { toast } from "./ui.js";

export class ProfileView {
  constructor(app) {
    this.app = app;
    this.el = h("div", { class: "view view--profile" });
    this.render();
  }

  render() {
    const app = this.app;
    const t = app.t;
    const me = app.me;
    const teams = (me.team_ids || []).map((id) => (app.teams.get(id) || { name: id }).name);
    const status = me.status === "away" ? "away" : "online";
    const perm = "Notification" in window ? Notification.permission : "unsupported";
    const statusBtn = (value, label) => h("button", { type: "button", class: ["seg", status === value && "is-active"],
      "aria-pressed": String(status === value), data: { status: value }, on: { click: () => this.setStatus(value) } },
      h("span", { class: "presence-dot presence-dot--" + value, "aria-hidden": "true" }), label);
    const language = h("select", { id: "profile-language", class: "select", "aria-describedby": "profile-language-help",
      on: { change: () => this.setLanguage(language.value) } },
      LANGUAGES.map((l) => h("option", { value: l.code, lang: l.code, text: l.name, selected: l.code === t.lang })));
    language.value = t.lang;
    // Drawn again on every change: keep the keyboard focus on the control that had it.
    const active = document.activeElement;
    const focused = active && this.el.contains(active) ? active.id || (active.dataset.status && "[data-status=" + active.dataset.status + "]") : "";
    replace(this.el, h("div", { class: "page" },
      h("h1", { text: t("profile.title") }),
      h("div", { class: "card profile" },
        h("span", { class: "avatar avatar--xl", "aria-hidden": "true", text: initials(me.name) }),
        h("div", {},
          h("div", { class: "profile__name", text: me.name }),
          h("div", { class: "muted", text: me.email }),
          h("div", { class: "profile__tags" }, teams.map((name) => h("span", { class: "tag", text: name })),
            me.is_admin ? h("span", { class: "tag tag--assignee", text: t("profile.admin") }) : null))),
      h("div", { class: "card" },
        h("h2", {}, h("label", { for: "profile-language", text: t("profile.language") })),
        h("p", { class: "muted", id: "profile-language-help", text: t("profile.language_help") }),
        language),
      h("div", { class: "card" },
        h("h2", { id: "profile-availability", text: t("profile.availability") }),
        h("p", { class: "muted", text: t("profile.availability_help") }),
        h("div", { class: "segmented", role: "group", "aria-labelledby": "profile-availability" },
          statusBtn("online", t("profile.online")), statusBtn("away", t("profile.away")))),
      h("div", { class: "card" },
        h("h2", { text: t("profile.alerts") }),
        h("p", { class: "muted", text: t("profile.alerts_help") }),
        h("div", { class: "row" },
          h("span", { class: "muted", text: t("profile.notifications", { state: t("perm." + perm) }) }),
          perm === "default" ? h("button", { type: "button", class: "btn btn--ghost", on: { click: () => this.askPermission() } },
            t("profile.enable")) : null,
          h("button", { type: "button", class: "btn btn--ghost", id: "test-ringtone", on: { click: () => this.testRing() } },
            t("profile.test_ring"))))));
    if (focused) {
      const again = this.el.querySelector(focused.startsWith("[") ? focused : "#" + focused);
      if (again) again.focus();
    }
  }

  async setLanguage(code) {
    try {
      await this.app.setLocale(code);
      const select = this.el.querySelector("#profile-language");
      if (select) select.focus(); // the view was drawn again in the new language
    } catch (err) {
      toast(this.app, this.app.t("profile.language_failed", { message: errorText(this.app.t, err) }), "error");
      this.render();
    }
  }

  async setStatus(status) {
    try {
      const res = await this.app.hub.call("agent.status", { status });
      this.app.me = { ...this.app.me, ...res.agent };
      this.app.renderPresence();
    } catch (err) {
      toast(this.app, errorText(this.app.t, err), "error");
    }
  }

  async askPermission() {
    await Notification.requestPermission();
    this.render();
  }

  testRing() {
    const audio = document.getElementById("ringtone");
    audio.loop = false;
    audio.currentTime = 0;
    audio.play().catch(() => {});
  }
}
