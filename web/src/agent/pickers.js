// Pickers in modal dialogs: articles (searchable cards), flows, chat blocks, and the redirect target.
import { h, icon, replace, debounce } from "../shared/dom.js";
import { initials } from "../shared/render.js";
import { modal } from "./ui.js";

/** A searchable list in a dialog; `load(q)` resolves to items, `item(x, choose)` renders one. */
function searchPicker(title, { load, item, placeholder, className }) {
  return modal(title, (close) => {
    const results = h("div", { class: "picker__results" });
    const search = h("input", { type: "search", class: "picker__search", placeholder,
      on: { input: debounce(() => run(), 150) } });
    async function run() {
      let items = [];
      try {
        items = await load(search.value.trim());
      } catch (err) {
        replace(results, h("p", { class: "muted", text: err.message }));
        return;
      }
      replace(results, items.length ? items.map((x) => item(x, () => close(x))) : h("p", { class: "muted", text: "Nothing found." }));
    }
    run();
    return [h("div", { class: "picker__searchbox" }, icon("search", 16), search), results];
  }, { wide: true, className });
}

export function articlesDialog(app) {
  return searchPicker("Send an article", {
    placeholder: "Search articles",
    className: "picker--articles",
    load: async (q) => (await app.hub.call("articles.search", { q })).articles,
    item: (a, choose) => h("button", { type: "button", class: "pick pick--card", data: { id: a.id }, on: { click: choose } },
      h("span", { class: "pick__icon" }, icon("article", 20)),
      h("span", { class: "pick__text" },
        h("span", { class: "pick__title", text: a.title }),
        h("span", { class: "pick__summary", text: a.summary || "" }),
        h("span", { class: "pick__url", text: a.url || "" }))),
  });
}

export function flowsDialog(app) {
  let flows = null;
  return searchPicker("Send a flow", {
    placeholder: "Filter flows",
    className: "picker--flows",
    load: async (q) => {
      if (!flows) flows = (await app.hub.call("flows.list", {})).flows;
      const needle = q.toLowerCase();
      return flows.filter((f) => !needle || f.name.toLowerCase().includes(needle));
    },
    item: (f, choose) => h("button", { type: "button", class: "pick pick--card", data: { id: f.id }, on: { click: choose } },
      h("span", { class: "pick__icon" }, icon("flow", 20)),
      h("span", { class: "pick__text" },
        h("span", { class: "pick__title", text: f.name }),
        h("span", { class: "pick__summary", text: (f.steps || []).map((s) => s.question).join(" → ") }))),
  });
}

export function chatblocksDialog(app, conversationId, fill) {
  return searchPicker("Send a chat block", {
    placeholder: "Search text blocks",
    className: "picker--chatblocks",
    load: async (q) => (await app.hub.call("textblocks.search", { q, conversation_id: conversationId })).textblocks,
    item: (b, choose) => h("button", { type: "button", class: "pick pick--card", data: { id: b.id }, on: { click: choose } },
      h("span", { class: "pick__icon" }, icon("chatblock", 20)),
      h("span", { class: "pick__text" },
        h("span", { class: "pick__title" }, h("span", { class: "tbpopup__shortcut", text: "#" + b.shortcut }), " ", b.title),
        h("span", { class: "pick__summary", text: fill(b.body) }))),
  });
}

/** Choose an agent or a team (and an optional note); resolves `{agent_id}` / `{team_id}` + `note`, or undefined. */
export function redirectDialog(app, conv) {
  return modal("Redirect conversation", (close) => {
    let choice = null;
    const note = h("textarea", { class: "redirect__note", rows: "2", placeholder: "Optional note for the receiver (internal)" });
    const go = h("button", { type: "button", class: "btn btn--orange", disabled: true, id: "redirect-confirm",
      on: { click: () => close({ ...choice, ...(note.value.trim() ? { note: note.value.trim() } : {}) }) } }, "Redirect");
    const options = [];
    const option = (key, label, sub, status, value) => {
      const el = h("button", { type: "button", class: "pick pick--row", data: { key },
        on: { click: () => {
          choice = value;
          for (const o of options) o.classList.toggle("is-selected", o === el);
          go.disabled = false;
        } } },
        h("span", { class: "avatar avatar--sm", text: initials(label) }),
        h("span", { class: "pick__text" }, h("span", { class: "pick__title", text: label }),
          sub ? h("span", { class: "pick__summary", text: sub }) : null),
        status ? h("span", { class: "presence presence--" + status, text: status }) : null);
      options.push(el);
      return el;
    };
    const agents = [...app.agents.values()].filter((a) => a.id !== app.me.id && a.id !== conv.assignee_id);
    const teams = [...app.teams.values()];
    return [
      h("h3", { class: "picker__group", text: "Agents" }),
      h("div", { class: "picker__results" }, agents.length ? agents.map((a) => option("agent:" + a.id, a.name,
        (a.team_ids || []).map((id) => app.teams.get(id)?.name).filter(Boolean).join(", "), a.status || "offline", { agent_id: a.id }))
        : h("p", { class: "muted", text: "No other agent." })),
      h("h3", { class: "picker__group", text: "Teams" }),
      h("div", { class: "picker__results" }, teams.map((t) => option("team:" + t.id, t.name, "Routing: " + t.routing, null, { team_id: t.id }))),
      note,
      h("div", { class: "modal__actions" }, h("button", { type: "button", class: "btn btn--ghost", on: { click: () => close() } }, "Cancel"), go),
    ];
  });
}
