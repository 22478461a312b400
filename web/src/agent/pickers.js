// Pickers in modal dialogs: articles (searchable cards), flows, chat blocks, and the redirect target.
// Articles, flows and text blocks come in several languages: the conversation's language comes first.
import { errorText } from "../shared/i18n.js";
import { h, icon, replace, debounce } from "../shared/dom.js";
import { initials } from "../shared/render.js";
import { modal } from "./ui.js";

/** A searchable list in a dialog; `load(q)` resolves to items, `item(x, choose)` renders one. */
function searchPicker(app, title, { load, item, placeholder, className }) {
  const t = app.t;
  return modal(title, (close) => {
    const results = h("div", { class: "picker__results", role: "group", "aria-label": t("picker.results"), "aria-live": "polite",
      "aria-busy": "true" });
    const search = h("input", { type: "search", class: "picker__search", placeholder, "aria-label": placeholder,
      on: { input: debounce(() => run(), 150) } });
    async function run() {
      let items = [];
      results.setAttribute("aria-busy", "true");
      try {
        items = await load(search.value.trim());
      } catch (err) {
        replace(results, h("p", { class: "muted", text: errorText(t, err) }));
        return;
      } finally {
        results.setAttribute("aria-busy", "false");
      }
      replace(results, items.length ? items.map((x) => item(x, () => close(x))) : h("p", { class: "muted", text: t("picker.nothing") }));
    }
    run();
    return [h("div", { class: "picker__searchbox" }, icon("search", 16), search), results];
  }, { wide: true, className, closeLabel: t("modal.close") });
}

/** A language tag on a picked item when it is not in the conversation's language. */
function langTag(itemLanguage, wanted) {
  return itemLanguage && wanted && itemLanguage !== wanted ? h("span", { class: "tag tag--lang", lang: itemLanguage, text: itemLanguage }) : null;
}

/** The conversation's language (set from the customer's widget), else the agent's. */
export function conversationLanguage(app, conv) {
  return (conv && conv.language) || app.t.lang;
}

export function articlesDialog(app, conv) {
  const t = app.t;
  const language = conversationLanguage(app, conv);
  return searchPicker(app, t("picker.articles"), {
    placeholder: t("picker.articles_search"),
    className: "picker--articles",
    load: async (q) => (await app.hub.call("articles.search", { q, language })).articles,
    item: (a, choose) => h("button", { type: "button", class: "pick pick--card", data: { id: a.id }, lang: a.language || null,
      on: { click: choose } },
    h("span", { class: "pick__icon" }, icon("article", 20)),
    h("span", { class: "pick__text" },
      h("span", { class: "pick__title" }, a.title, " ", langTag(a.language, language)),
      h("span", { class: "pick__summary", text: a.summary || "" }),
      h("span", { class: "pick__url", text: a.url || "" }))),
  });
}

export function flowsDialog(app, conv) {
  const t = app.t;
  const language = conversationLanguage(app, conv);
  let flows = null;
  return searchPicker(app, t("picker.flows"), {
    placeholder: t("picker.flows_filter"),
    className: "picker--flows",
    load: async (q) => {
      if (!flows) {
        flows = (await app.hub.call("flows.list", {})).flows;
        // the conversation's language first, then by name (a stable sort keeps the server's order otherwise)
        flows.sort((a, b) => (a.language === language ? 0 : 1) - (b.language === language ? 0 : 1)
          || a.name.localeCompare(b.name, t.lang));
      }
      const needle = q.toLocaleLowerCase(t.lang);
      return flows.filter((f) => !needle || f.name.toLocaleLowerCase(t.lang).includes(needle));
    },
    item: (f, choose) => h("button", { type: "button", class: "pick pick--card", data: { id: f.id }, lang: f.language || null,
      on: { click: choose } },
    h("span", { class: "pick__icon" }, icon("flow", 20)),
    h("span", { class: "pick__text" },
      h("span", { class: "pick__title" }, f.name, " ", langTag(f.language, language)),
      h("span", { class: "pick__summary", text: (f.steps || []).map((s) => s.question).join(" → ") }))),
  });
}

export function chatblocksDialog(app, conv, fill) {
  const t = app.t;
  const language = conversationLanguage(app, conv);
  return searchPicker(app, t("picker.chatblocks"), {
    placeholder: t("picker.chatblocks_search"),
    className: "picker--chatblocks",
    // the server ranks the conversation's language first
    load: async (q) => (await app.hub.call("textblocks.search", { q, conversation_id: conv.id })).textblocks,
    item: (b, choose) => h("button", { type: "button", class: "pick pick--card", data: { id: b.id }, lang: b.language || null,
      on: { click: choose } },
    h("span", { class: "pick__icon" }, icon("chatblock", 20)),
    h("span", { class: "pick__text" },
      h("span", { class: "pick__title" }, h("span", { class: "tbpopup__shortcut", text: "#" + b.shortcut }), " ", b.title, " ",
        langTag(b.language, language)),
      h("span", { class: "pick__summary", text: fill(b.body) }))),
  });
}

/** Choose an agent or a team (and an optional note); resolves `{agent_id}` / `{team_id}` + `note`, or undefined. */
export function redirectDialog(app, conv) {
  const t = app.t;
  return modal(t("redirect.title"), (close) => {
    let choice = null;
    const note = h("textarea", { class: "redirect__note", rows: "2", placeholder: t("redirect.note"), "aria-label": t("redirect.note") });
    const go = h("button", { type: "button", class: "btn btn--orange", disabled: true, id: "redirect-confirm",
      on: { click: () => close({ ...choice, ...(note.value.trim() ? { note: note.value.trim() } : {}) }) } }, t("redirect.confirm"));
    const options = [];
    const option = (key, label, sub, status, value) => {
      const el = h("button", { type: "button", class: "pick pick--row", data: { key }, "aria-pressed": "false",
        on: { click: () => {
          choice = value;
          for (const o of options) {
            o.classList.toggle("is-selected", o === el);
            o.setAttribute("aria-pressed", String(o === el));
          }
          go.disabled = false;
        } } },
      h("span", { class: "avatar avatar--sm", "aria-hidden": "true", text: initials(label) }),
      h("span", { class: "pick__text" }, h("span", { class: "pick__title", text: label }),
        sub ? h("span", { class: "pick__summary", text: sub }) : null),
      status ? h("span", { class: "presence presence--" + status, text: t("presence." + status) }) : null);
      options.push(el);
      return el;
    };
    const agents = [...app.agents.values()].filter((a) => a.id !== app.me.id && a.id !== conv.assignee_id);
    const teams = [...app.teams.values()];
    return [
      h("h3", { class: "picker__group", id: "redirect-agents", text: t("redirect.agents") }),
      h("div", { class: "picker__results", role: "group", "aria-labelledby": "redirect-agents" },
        agents.length ? agents.map((a) => option("agent:" + a.id, a.name,
          (a.team_ids || []).map((id) => app.teams.get(id)?.name).filter(Boolean).join(", "), a.status || "offline", { agent_id: a.id }))
          : h("p", { class: "muted", text: t("redirect.no_agent") })),
      h("h3", { class: "picker__group", id: "redirect-teams", text: t("redirect.teams") }),
      h("div", { class: "picker__results", role: "group", "aria-labelledby": "redirect-teams" },
        teams.map((tm) => option("team:" + tm.id, tm.name,
          t("redirect.routing", { routing: t.has("routing." + tm.routing) ? t("routing." + tm.routing) : tm.routing }), null,
          { team_id: tm.id }))),
      note,
      h("div", { class: "modal__actions" },
        h("button", { type: "button", class: "btn btn--ghost", on: { click: () => close() } }, t("redirect.cancel")), go),
    ];
  }, { closeLabel: t("modal.close") });
}
