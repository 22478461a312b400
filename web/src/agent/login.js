// The sign-in form: email + password -> POST /api/auth/login; the token is kept in sessionStorage.
import { h, replace } from "../shared/dom.js";
import { login } from "./api.js";

export function showLogin(root, onLoggedIn) {
  const error = h("div", { class: "login__error", role: "alert" });
  const email = h("input", { type: "email", name: "email", id: "login-email", autocomplete: "username", required: true,
    placeholder: "you@company.com" });
  const password = h("input", { type: "password", name: "password", id: "login-password",
    autocomplete: "current-password", required: true, placeholder: "Password" });
  const submit = h("button", { type: "submit", class: "btn btn--primary btn--block", text: "Sign in" });
  const form = h("form", { class: "login__form", on: { submit: onSubmit } },
    h("label", { for: "login-email", text: "Email" }), email,
    h("label", { for: "login-password", text: "Password" }), password,
    error, submit);

  async function onSubmit(ev) {
    ev.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    submit.textContent = "Signing in…";
    // Asking here, inside the click, is what browsers require for the notification prompt.
    if ("Notification" in window && Notification.permission === "default") {
      Notification.requestPermission().catch(() => {});
    }
    try {
      const res = await login(email.value.trim(), password.value);
      onLoggedIn(res.token, res.agent);
    } catch (err) {
      error.textContent = err.code === "unauthorized" ? "Wrong email or password." : err.message;
      submit.disabled = false;
      submit.textContent = "Sign in";
    }
  }

  replace(root, h("div", { class: "login" },
    h("div", { class: "login__card" },
      h("div", { class: "login__brand" }, h("span", { class: "brand-mark", text: "e" }),
        h("span", { class: "brand-name", text: "Engage" })),
      h("h1", { text: "Sign in to Live Chat" }),
      h("p", { class: "muted", text: "Use your agent account." }),
      form)));
  email.focus();
}
