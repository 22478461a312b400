// The console's REST calls: login and "who am I".
import { HubError } from "../shared/hub.js";

const TOKEN_KEY = "rtc-engage.agent.token";

export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

async function json(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) {
    const e = (body && body.error) || {};
    throw new HubError(e.code || "http_" + res.status, e.message || "request failed (" + res.status + ")");
  }
  return body;
}

/** POST /api/auth/login -> {token, agent} */
export async function login(email, password) {
  const res = await fetch("/api/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  return json(res);
}

/** GET /api/me with the stored token -> the agent, or null if the token is no longer valid. */
export async function me(token) {
  const res = await fetch("/api/me", { headers: { Authorization: "Bearer " + token } });
  if (res.status === 401 || res.status === 403) return null;
  const body = await json(res);
  return body.kind === "agent" ? body.agent : null;
}

/** PATCH /api/me (agent): `{locale?, name?}` -> the updated agent. */
export async function updateMe(token, fields) {
  const res = await fetch("/api/me", {
    method: "PATCH",
    headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
    body: JSON.stringify(fields),
  });
  const body = await json(res);
  return body.agent || body;
}
