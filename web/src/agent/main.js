// Entry point of the agent console: the login form, or the console if a session token is valid.
import { session, me } from "./api.js";
import { showLogin } from "./login.js";
import { Console } from "./console.js";
import { installCalls } from "./calls.js";

async function boot() {
  const root = document.getElementById("root");
  const start = (token, agent) => {
    session.token = token;
    const app = new Console(root, { token, agent, onLogout: () => logout(app) });
    app.start();
    installCalls(app); // calls, video, screens, conferences (./calls.js)
    window.__console = app; // handy in the browser's devtools and in tests
  };
  const logout = (app) => {
    if (app.calls) app.calls.close();
    app.stop();
    session.token = null;
    window.__console = undefined;
    showLogin(root, start);
  };
  const token = session.token;
  if (token) {
    try {
      const agent = await me(token);
      if (agent) return start(token, agent);
    } catch (err) {
      console.warn("session check failed", err);
    }
    session.token = null;
  }
  showLogin(root, start);
}

boot();
