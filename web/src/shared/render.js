// One timeline message as DOM, shared by the console and the widget (their CSS differs).
// Every user-provided string goes through textContent; links are http(s) only.
import { h, icon } from "./dom.js";
import { fileSize, longTime, shortTime, systemText } from "./i18n.js";
import { downloadInto } from "./download.js";

/** `url` if it is an http(s) URL (relative URLs resolve against `base`), else null. */
export function safeUrl(url, base = location.href) {
  try {
    const u = new URL(String(url), base);
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch {
    return null;
  }
}

/** Initials for an avatar ("Marie Dupont" -> "MD"). */
export function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : (parts[0] || "?").slice(0, 2);
  return letters.toUpperCase();
}

/**
 * @param {object} msg  message wire shape (or a pending local one with `pending: true`)
 * @param {object} ctx  {viewer: "agent"|"customer", t, asset(url), isMine(msg), renderFlow?(msg),
 *                       status?(msg) -> string, authorName?(msg) -> string}
 */
export function renderMessage(msg, ctx) {
  const { t } = ctx;
  if (msg.kind === "system") {
    return h("div", { class: "msg msg--system", data: { seq: msg.seq ?? "", kind: "system" } },
      h("span", { class: "msg__system", text: systemText(msg, t) }));
  }
  const mine = ctx.isMine(msg);
  const side = msg.kind === "note" ? "note" : mine ? "mine" : "theirs";
  const classes = ["msg", "msg--" + side, "msg--k-" + msg.kind, msg.pending && "msg--pending",
    msg.failed && "msg--failed"];
  const author = ctx.authorName ? ctx.authorName(msg) : (msg.author && msg.author.name) || "";
  const meta = h("div", { class: "msg__meta" },
    msg.kind === "note" ? h("span", { class: "msg__notelabel" }, icon("note", 12), t("msg.note")) : null,
    author ? h("span", { class: "msg__author", text: author }) : null,
    msg.created_at ? h("time", { class: "msg__time", datetime: msg.created_at, title: longTime(msg.created_at, t.lang),
      text: shortTime(msg.created_at, t.lang) }) : null);
  const bubble = h("div", { class: "msg__bubble" }, content(msg, ctx));
  let status = null;
  if (msg.pending) status = h("div", { class: "msg__status", text: msg.failed ? t("msg.failed") : t("msg.sending") });
  else if (mine && ctx.status) {
    const s = ctx.status(msg);
    if (s) status = h("div", { class: "msg__status msg__status--" + s, text: t("msg." + s) });
  }
  return h("div", { class: classes, data: { seq: msg.seq ?? "", kind: msg.kind, id: msg.id || msg.client_id } },
    meta, bubble, status);
}

function content(msg, ctx) {
  const { t } = ctx;
  const att = msg.attachment;
  switch (msg.kind) {
    case "image":
      if (!att) return text(msg.body);
      return h("a", { class: "att att--image", href: ctx.asset(att.url), target: "_blank", rel: "noopener noreferrer" },
        h("img", { src: ctx.asset(att.thumbnail_url || att.url), alt: att.name || "" }),
        h("span", { class: "att__name", text: att.name || "" }));
    case "video":
      if (!att) return text(msg.body);
      return h("div", { class: "att att--video" },
        h("video", { src: ctx.asset(att.url), controls: true, preload: "metadata" }),
        fileLine(att, ctx));
    case "audio":
      if (!att) return text(msg.body);
      return h("div", { class: "att att--audio" },
        h("audio", { src: ctx.asset(att.url), controls: true, preload: "metadata" }),
        fileLine(att, ctx));
    case "file": {
      if (!att) return text(msg.body);
      // A plain click downloads in the page with a progress bar (./download.js); a modified click
      // (new tab, save link as...) is the browser's own download.
      const href = ctx.asset(att.url);
      const name = att.name || "file";
      const box = h("div", { class: "att-box" });
      const link = h("a", { class: "att att--file", href, download: name, target: "_blank", rel: "noopener noreferrer",
        title: t("msg.download"),
        on: { click: (e) => {
          if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
          e.preventDefault();
          downloadInto(box, href, name, t);
        } } },
        icon("file", 28),
        h("span", { class: "att__info" },
          h("span", { class: "att__name", text: name }),
          h("span", { class: "att__size", text: [fileSize(att.size, t.lang), att.mime].filter(Boolean).join(" · ") })));
      box.append(link);
      return box;
    }
    case "article":
      return articleCard(msg.article || { title: msg.body }, t);
    case "flow":
      if (ctx.renderFlow) return ctx.renderFlow(msg);
      return flowSummary(msg, t);
    case "flow_answer": {
      const fa = msg.flow_answer || {};
      return h("div", { class: "flowanswer" },
        fa.question ? h("div", { class: "flowanswer__q", text: fa.question }) : null,
        h("div", { class: "flowanswer__a", text: fa.answer ?? msg.body }));
    }
    default:
      return text(msg.body);
  }
}

function text(body) {
  return h("div", { class: "msg__text", text: body || "" });
}

function fileLine(att, ctx) {
  return h("a", { class: "att__line", href: ctx.asset(att.url), download: att.name || "file", target: "_blank",
    rel: "noopener noreferrer" },
    h("span", { class: "att__name", text: att.name || "" }),
    h("span", { class: "att__size", text: fileSize(att.size, ctx.t.lang) }));
}

/** An article card: title, summary, link (opens in a new tab). */
export function articleCard(article, t) {
  const href = safeUrl(article.url);
  const host = href ? new URL(href).host : "";
  const inner = [
    h("span", { class: "article__badge" }, icon("article", 14), t("msg.article")),
    h("span", { class: "article__title", text: article.title || "" }),
    article.summary ? h("span", { class: "article__summary", text: article.summary }) : null,
    host ? h("span", { class: "article__host", text: host }) : null,
  ];
  if (!href) return h("div", { class: "article" }, inner);
  return h("a", { class: "article", href, target: "_blank", rel: "noopener noreferrer" }, inner);
}

function flowSummary(msg, t) {
  const flow = msg.flow || { name: msg.body, steps: [] };
  return h("div", { class: "flow" },
    h("div", { class: "flow__head" }, icon("flow", 14), h("span", { text: t("msg.flow") + ": " + (flow.name || "") })),
    h("ol", { class: "flow__steps" },
      (flow.steps || []).map((s) => h("li", { text: s.question || "" }))));
}
