// The message catalogue of the pages (console, widget, join page) and the formatting of dates, times,
// durations and sizes for a language (Intl). One file per language in ./locales: adding a language is
// adding its file and one import line below; a key missing in a language falls back to English.
import en from "./locales/en.js";
import fr from "./locales/fr.js";

/** Catalogues by language code (the first two letters of a BCP 47 tag). */
const CATALOGUES = { en, fr };

/** The languages the pages speak: `[{code, name}]`, each named in its own language. */
export const LANGUAGES = Object.entries(CATALOGUES).map(([code, table]) => ({ code, name: table["language.name"] || code }));

/** The supported language of `locale` ("fr-CA" -> "fr"), or "" when there is none. */
export function supportedLanguage(locale) {
  const lang = String(locale || "").toLowerCase().split(/[-_]/)[0];
  return CATALOGUES[lang] ? lang : "";
}

/** The first supported language among `candidates` (tags, in order of preference), else English. */
export function pickLanguage(...candidates) {
  for (const c of candidates.flat()) {
    const lang = supportedLanguage(c);
    if (lang) return lang;
  }
  return "en";
}

/** The browser's preferred supported language (navigator.languages, then navigator.language). */
export function browserLanguage() {
  if (typeof navigator === "undefined") return "en";
  return pickLanguage(navigator.languages || [], navigator.language);
}

function fill(template, params) {
  return template.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

/**
 * A translator for `locale` ("fr-CA" -> fr; unknown -> en): `t(key, params)` fills `{name}`;
 * `t.plural(key, n, params)` picks `key.one` / `key.other` with Intl.PluralRules; `t.has(key)`;
 * `t.lang` (the catalogue's code, also the tag given to Intl) and formatters `t.time(iso)`,
 * `t.duration(seconds)`, `t.size(bytes)`, `t.list(items)`, `t.percent(fraction)`.
 */
export function translator(locale) {
  const lang = supportedLanguage(locale) || "en";
  const table = CATALOGUES[lang];
  const t = (key, params = {}) => fill(table[key] ?? en[key] ?? key, params);
  t.lang = lang;
  t.has = (key) => key in table || key in en;
  const plurals = new Intl.PluralRules(lang);
  t.plural = (key, n, params = {}) => {
    const form = key + "." + plurals.select(n);
    return t(t.has(form) ? form : key + ".other", { n: new Intl.NumberFormat(lang).format(n), ...params });
  };
  t.time = (iso) => shortTime(iso, lang);
  t.duration = (seconds) => formatDuration(seconds, lang);
  t.size = (bytes) => fileSize(bytes, lang);
  t.list = (items) => formatList(items, lang);
  t.percent = (fraction) => new Intl.NumberFormat(lang, { style: "percent" }).format(Math.max(0, Math.min(1, fraction || 0)));
  return t;
}

/** A system message (code + params) in the reader's language; falls back to the server's body. */
export function systemText(msg, t) {
  const code = msg.code;
  if (!code) return msg.body || "";
  const key = "sys." + code;
  if (!t.has(key)) return msg.body || code;
  const params = { ...(msg.params || {}) };
  if (params.kind) {
    params.kind_label = t("kind." + params.kind);
    params.e = t.has("kind." + params.kind + ".e") ? t("kind." + params.kind + ".e") : "";
  } else {
    params.e = "";
  }
  const text = t(key, params);
  if (code === "request.ended" && typeof params.duration_s === "number") {
    return t("sys.duration", { text, duration: t.duration(params.duration_s) });
  }
  return text;
}

/** An error in the reader's words: known codes (timeout, network, forbidden, conflict, ...) from the
 * catalogue (`error.<code>`), otherwise the server's own message. */
export function errorText(t, err) {
  const code = err && err.code;
  if (code && code !== "invalid" && t.has("error." + code)) return t("error." + code);
  return (err && err.message) || t("error.unknown");
}

/** "14:05" today, "12 Mar, 14:05" otherwise, in `lang`. */
export function shortTime(iso, lang = "en") {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const now = new Date();
  if (d.toDateString() === now.toDateString()) {
    return new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit" }).format(d);
  }
  return new Intl.DateTimeFormat(lang, { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" }).format(d);
}

/** A full date and time for a tooltip ("Wednesday 25 November 2026, 14:05"). */
export function longTime(iso, lang = "en") {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return new Intl.DateTimeFormat(lang, { dateStyle: "full", timeStyle: "short" }).format(d);
}

/** "3 min, 12 sec" / "3 min et 12 s": Intl.DurationFormat where the browser has it, else number units. */
export function formatDuration(seconds, lang = "en") {
  const total = Math.max(0, Math.floor(Number(seconds) || 0));
  const parts = { hours: Math.floor(total / 3600), minutes: Math.floor((total % 3600) / 60), seconds: total % 60 };
  if (typeof Intl.DurationFormat === "function") {
    const shown = Object.fromEntries(Object.entries(parts).filter(([, v]) => v));
    return new Intl.DurationFormat(lang, { style: "short" }).format(Object.keys(shown).length ? shown : { seconds: 0 });
  }
  const unit = (value, name) => new Intl.NumberFormat(lang, { style: "unit", unit: name, unitDisplay: "short" }).format(value);
  const out = [];
  if (parts.hours) out.push(unit(parts.hours, "hour"));
  if (parts.minutes) out.push(unit(parts.minutes, "minute"));
  if (parts.seconds || !out.length) out.push(unit(parts.seconds, "second"));
  return out.join(" ");
}

/** A running call's clock ("03:12", "1:03:12"), with the locale's digits. */
export function formatClock(seconds, lang = "en") {
  const total = Math.max(0, Math.floor(Number(seconds) || 0));
  const nf = new Intl.NumberFormat(lang, { minimumIntegerDigits: 2, useGrouping: false });
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return (h ? new Intl.NumberFormat(lang).format(h) + ":" : "") + nf.format(m) + ":" + nf.format(s);
}

/** "12.3 kB" / "12,3 ko". */
export function fileSize(bytes, lang = "en") {
  if (!Number.isFinite(bytes)) return "";
  if (bytes < 1000) return translator(lang)("size.bytes", { n: new Intl.NumberFormat(lang).format(bytes) });
  const [unit, value] = bytes < 1000 * 1000 ? ["kilobyte", bytes / 1000] : ["megabyte", bytes / 1000 / 1000];
  return new Intl.NumberFormat(lang, { style: "unit", unit, unitDisplay: "short", maximumFractionDigits: value < 10 ? 1 : 0 })
    .format(value);
}

/** "Alice, Bob and Carol" / "Alice, Bob et Carol". */
export function formatList(items, lang = "en") {
  const list = [...items].map(String);
  if (typeof Intl.ListFormat === "function") return new Intl.ListFormat(lang, { type: "conjunction" }).format(list);
  return list.join(", ");
}
