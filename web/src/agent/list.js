// The conversation list of the selected Live Chat section (or of a search).
import { h, replace } from "../shared/dom.js";
import { initials } from "../shared/render.js";
import { shortTime } from "../shared/i18n.js";

export const SECTIONS = [
  { id: "unassigned", label: "New/Unassigned" },
  { id: "mine", label: "Mine" },
  { id: "team", label: "Team" },
  { id: "done", label: "Done" },
];

/** Does `conv` belong in `section` for agent `me` (`teams`: a Set of team ids, or null for admins)? */
export function inSection(conv, section, me, teams) {
  const inTeam = !teams || teams.has(conv.team_id);
  switch (section) {
    case "unassigned":
      return conv.status === "open" && !conv.assignee_id && inTeam;
    case "mine":
      return conv.status === "open" && conv.assignee_id === me.id;
    case "team":
      return conv.status === "open" && inTeam;
    case "done":
      return conv.status === "done" && (inTeam || conv.assignee_id === me.id);
    default:
      return false;
  }
}

function stamp(conv) {
  return conv.last_message_at || conv.updated_at || conv.created_at || "";
}

export class ConversationList {
  constructor(app) {
    this.app = app;
    this.searchResults = null;
    this.title = h("h2", { class: "list__title" });
    this.items = h("ul", { class: "list__items", role: "list" });
    this.el = h("section", { class: "list", "aria-label": "Conversations" },
      h("header", { class: "list__header" }, this.title), this.items);
  }

  render() {
    const app = this.app;
    const teams = app.myTeams();
    let convs;
    if (this.searchResults) {
      this.title.textContent = "Search results";
      convs = this.searchResults.map((id) => app.convs.get(id)).filter(Boolean);
    } else {
      const section = SECTIONS.find((s) => s.id === app.section);
      this.title.textContent = section ? section.label : "";
      convs = [...app.convs.values()].filter((c) => inSection(c, app.section, app.me, teams));
      convs.sort((a, b) => (stamp(a) < stamp(b) ? 1 : stamp(a) > stamp(b) ? -1 : 0));
    }
    if (convs.length === 0) {
      replace(this.items, h("li", { class: "list__empty", text: this.searchResults ? "Nothing found." : "No conversations here." }));
      return;
    }
    replace(this.items, convs.map((c) => this.item(c)));
  }

  item(conv) {
    const app = this.app;
    const name = app.visitorName(conv);
    const unread = conv.unread || 0;
    const assignee = conv.assignee ? conv.assignee.name : "";
    const team = app.teams.get(conv.team_id);
    const sub = conv.last_message_preview || conv.page_url || "New conversation";
    return h("li", {
      class: ["conv-item", conv.id === app.openId && "is-open", unread > 0 && "is-unread"],
      data: { id: conv.id },
      tabindex: "0",
      on: {
        click: () => app.openConversation(conv.id),
        keydown: (e) => e.key === "Enter" && app.openConversation(conv.id),
      },
    },
      h("span", { class: "avatar", text: initials(name) }),
      h("div", { class: "conv-item__body" },
        h("div", { class: "conv-item__top" },
          h("span", { class: "conv-item__name", text: name }),
          h("span", { class: "conv-item__time", text: shortTime(stamp(conv)) })),
        h("div", { class: "conv-item__preview", text: sub }),
        h("div", { class: "conv-item__tags" },
          team ? h("span", { class: "tag", text: team.name }) : null,
          assignee ? h("span", { class: "tag tag--assignee", text: assignee }) : h("span", { class: "tag tag--new", text: conv.status === "done" ? "Done" : "Unassigned" }))),
      unread > 0 ? h("span", { class: "badge badge--alert conv-item__badge", text: String(unread) }) : null);
  }
}
