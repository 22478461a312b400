// The conversation list of the selected Live Chat section (or of a search). Each conversation is a
// button in a list item, so Tab, Enter and Space open it and screen readers hear its name and state.
import { h, replace } from "../shared/dom.js";
import { initials } from "../shared/render.js";
import { longTime, systemText } from "../shared/i18n.js";

/**
 * The last message of `conv` in the reader's language: from the loaded timeline when there is one,
 * else the server's preview, whose system messages (stored as English text) are rendered again from
 * the `last_message_system` `{code, params}` the server sends with it.
 */
export function conversationPreview(app, conv) {
  const model = app.models.get(conv.id);
  if (model && model.loaded) {
    const last = [...model.messages.values()].filter((m) => m.kind !== "note").sort((a, b) => b.seq - a.seq)[0];
    if (last && last.kind === "system") return systemText(last, app.t);
    if (last) return (last.attachment && last.attachment.name) || (last.article && last.article.title) || last.body || conv.last_message_preview;
  }
  const system = conv.last_message_system;
  if (system && system.code) return systemText({ ...system, body: conv.last_message_preview }, app.t);
  return conv.last_message_preview;
}

/** The sections, in order; their labels come from the catalogue (`section.<id>`). */
export const SECTIONS = [
  { id: "unassigned" },
  { id: "mine" },
  { id: "team" },
  { id: "done" },
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
    this.title = h("h2", { class: "list__title", id: "list-title" });
    this.items = h("ul", { class: "list__items", "aria-labelledby": "list-title" });
    this.el = h("section", { class: "list", "aria-labelledby": "list-title" },
      h("header", { class: "list__header" }, this.title), this.items);
  }

  render() {
    const app = this.app;
    const t = app.t;
    const teams = app.myTeams();
    let convs;
    if (this.searchResults) {
      this.title.textContent = t("list.search_results");
      convs = this.searchResults.map((id) => app.convs.get(id)).filter(Boolean);
    } else {
      this.title.textContent = t("section." + app.section);
      convs = [...app.convs.values()].filter((c) => inSection(c, app.section, app.me, teams));
      convs.sort((a, b) => (stamp(a) < stamp(b) ? 1 : stamp(a) > stamp(b) ? -1 : 0));
    }
    // keep the keyboard focus on the conversation that had it (the list is drawn again on every event)
    const active = document.activeElement;
    const focusedId = active && this.items.contains(active) ? active.dataset.id : null;
    if (convs.length === 0) {
      replace(this.items, h("li", { class: "list__empty", text: this.searchResults ? t("list.nothing_found") : t("list.empty") }));
      return;
    }
    replace(this.items, convs.map((c) => this.item(c)));
    if (focusedId) {
      const again = this.items.querySelector(`.conv-item[data-id="${CSS.escape(focusedId)}"]`);
      if (again) again.focus();
    }
  }

  /** The conversation's last message in the reader's language (see `conversationPreview`). */
  preview(conv) {
    return conversationPreview(this.app, conv);
  }

  item(conv) {
    const app = this.app;
    const t = app.t;
    const name = app.visitorName(conv);
    const unread = conv.unread || 0;
    const assignee = conv.assignee ? conv.assignee.name : "";
    const team = app.teams.get(conv.team_id);
    const sub = this.preview(conv) || conv.page_url || t("list.new_conversation");
    const time = stamp(conv);
    return h("li", { class: "conv-row" }, h("button", {
      type: "button",
      class: ["conv-item", conv.id === app.openId && "is-open", unread > 0 && "is-unread"],
      data: { id: conv.id },
      "aria-current": conv.id === app.openId ? "true" : null,
      on: { click: () => app.openConversation(conv.id) },
    },
    h("span", { class: "avatar", "aria-hidden": "true", text: initials(name) }),
    h("span", { class: "conv-item__body" },
      h("span", { class: "conv-item__top" },
        h("span", { class: "conv-item__name", text: name }),
        time ? h("time", { class: "conv-item__time", datetime: time, title: longTime(time, t.lang), text: t.time(time) }) : null),
      h("span", { class: "conv-item__preview", text: sub }),
      h("span", { class: "conv-item__tags" },
        team ? h("span", { class: "tag", text: team.name }) : null,
        assignee ? h("span", { class: "tag tag--assignee", text: assignee })
          : h("span", { class: "tag tag--new", text: conv.status === "done" ? t("list.done") : t("list.unassigned") }))),
    unread > 0 ? h("span", { class: "badge badge--alert conv-item__badge" },
      h("span", { "aria-hidden": "true", text: String(unread) }),
      h("span", { class: "sr-only", text: t.plural("list.unread", unread) })) : null));
  }
}
