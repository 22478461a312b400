// The sign-in form: email + password -> POST /api/auth/login; the token is kept in sessionStorage.
// Before signing in the agent is unknown, so the form speaks the browser's language.
import { h, replace } from "../shared/dom.js";
import { browserLanguage, errorText, translator } from "../shared/i18n.js";
import { login } from "./api.js";

export function showLogin(root, onLoggedIn) {
  const t = translator(browserLanguage());
  document.documentElement.lang = t.lang;
  document.title = t("console.title");
  const error = h("div", { class: "login__error", role: "alert" });
  const email = h("input", { type: "email", name: "email", id: "login-email", autocomplete: "username", required: true,
    placeholder: t("login.email_placeholder") });
  const password = h("input", { type: "password", name: "password", id: "login-password",
    autocomplete: "current-password", required: true, placeholder: t("login.password") });
  const submit = h("button", { type: "submit", class: "btn btn--primary btn--block", text: t("login.submit") });
  const form = h("form", { class: "login__form", on: { submit: onSubmit } },
    h("label", { for: "login-email", text: t("login.email") }), email,
    h("label", { for: "login-password", text: t("login.password") }), password,
    error, submit);

  async function onSubmit(ev) {
    ev.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    submit.textContent = t("login.submitting");
    // Asking here, inside the click, is what browsers require for the notification prompt.
    if ("Notification" in window && Notification.permission === "default") {
      Notification.requestPermission().catch(() => {});
    }
    try {
      const res = await login(email.value.trim(), password.value);
      onLoggedIn(res.token, res.agent);
    } catch (err) {
      error.textContent = err.code === "unauthorized" ? t("login.wrong") : errorText(t, err);
      submit.disabled = false;
      submit.textContent = t("login.submit");
    }
  }

  replace(root, h("main", { class: "login" },
    h("div", { class: "login__card" },
      h("div", { class: "login__brand" }, h("span", { class: "brand-mark", "aria-hidden": "true", text: "e" }),
        h("span", { class: "brand-name", text: "Engage" })),
      h("h1", { text: t("login.title") }),
      h("p", { class: "muted", text: t("login.subtitle") }),
      form)));
  email.focus();
}
