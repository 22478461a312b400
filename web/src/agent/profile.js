// The Profile & settings view: who I am, presence (online/away), notification permission, ringtone test.
import { h, replace } from "../shared/dom.js";
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
    const me = app.me;
    const teams = (me.team_ids || []).map((id) => (app.teams.get(id) || { name: id }).name);
    const status = me.status === "away" ? "away" : "online";
    const perm = "Notification" in window ? Notification.permission : "unsupported";
    const statusBtn = (value, label) => h("button", { type: "button", class: ["seg", status === value && "is-active"],
      data: { status: value }, on: { click: () => this.setStatus(value) } },
      h("span", { class: "presence-dot presence-dot--" + value }), label);
    replace(this.el, h("div", { class: "page" },
      h("h1", { text: "Profile & settings" }),
      h("div", { class: "card profile" },
        h("span", { class: "avatar avatar--xl", text: initials(me.name) }),
        h("div", {},
          h("div", { class: "profile__name", text: me.name }),
          h("div", { class: "muted", text: me.email }),
          h("div", { class: "profile__tags" }, teams.map((t) => h("span", { class: "tag", text: t })),
            me.is_admin ? h("span", { class: "tag tag--assignee", text: "admin" }) : null))),
      h("div", { class: "card" },
        h("h2", { text: "Availability" }),
        h("p", { class: "muted", text: "Away agents are not picked by automatic routing." }),
        h("div", { class: "segmented" }, statusBtn("online", "Online"), statusBtn("away", "Away"))),
      h("div", { class: "card" },
        h("h2", { text: "Alerts for new conversations" }),
        h("p", { class: "muted", text: "When the Live Chat view is not in front, new conversations show a notification and ring until you open them." }),
        h("div", { class: "row" },
          h("span", { class: "muted", text: "Desktop notifications: " + perm }),
          perm === "default" ? h("button", { type: "button", class: "btn btn--ghost", on: { click: () => this.askPermission() } }, "Enable") : null,
          h("button", { type: "button", class: "btn btn--ghost", id: "test-ringtone", on: { click: () => this.testRing() } }, "Test ringtone")))));
  }

  async setStatus(status) {
    try {
      const res = await this.app.hub.call("agent.status", { status });
      this.app.me = { ...this.app.me, ...res.agent };
      this.app.renderPresence();
    } catch (err) {
      toast(this.app, err.message, "error");
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
