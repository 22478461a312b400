// Strings of the two pages in English and French (the product was specified in French).

const STRINGS = {
  en: {
    "kind.cobrowse": "Co-browsing",
    "kind.call": "Call",
    "kind.video": "Video call",
    "kind.desktop": "Desktop share",
    "kind.show_screen": "Screen share",
    "kind.conference": "Conference call",
    "sys.conversation.started": "Conversation started",
    "sys.conversation.assigned": "{agent_name} joined the conversation",
    "sys.conversation.redirected_agent": "Conversation redirected to {agent_name}",
    "sys.conversation.redirected_team": "Conversation redirected to team {team_name}",
    "sys.conversation.done": "Conversation resolved",
    "sys.conversation.reopened": "Conversation reopened",
    "sys.request.pending": "{kind_label} requested",
    "sys.request.accepted": "{kind_label} accepted",
    "sys.request.active": "{kind_label} started",
    "sys.request.declined": "{kind_label} declined",
    "sys.request.cancelled": "{kind_label} cancelled",
    "sys.request.expired": "{kind_label} request expired",
    "sys.request.ended": "{kind_label} ended",
    "sys.duration": " after {min} min {sec} s",
    "state.pending": "Waiting for answer",
    "state.accepted": "Accepted",
    "state.active": "Active",
    "state.declined": "Declined",
    "state.cancelled": "Cancelled",
    "state.expired": "Expired",
    "state.ended": "Ended",
    "msg.note": "Internal note",
    "msg.flow": "Flow",
    "msg.article": "Article",
    "msg.download": "Download",
    "msg.sending": "Sending…",
    "msg.failed": "Not sent",
    "msg.delivered": "Delivered",
    "msg.read": "Read",
    "flow.send": "Send",
    "flow.done": "Thank you, your answers were sent.",
    "flow.placeholder": "Your answer",
    "customer": "Customer",
    "visitor": "Visitor",
    "system": "System",
    "typing": "{name} is typing…",
    "reconnecting": "Reconnecting…",
    "online_again": "Back online",
    "widget.title": "Chat with us",
    "widget.subtitle": "We usually reply within a few minutes",
    "widget.open": "Open chat",
    "widget.close": "Close chat",
    "widget.hello": "Hi there!",
    "widget.hello_sub": "Ask us anything about your order, delivery or returns. A real person answers.",
    "widget.name": "Your name (optional)",
    "widget.first": "How can we help?",
    "widget.start": "Start chat",
    "widget.placeholder": "Write a message…",
    "widget.attach": "Send a file",
    "widget.send": "Send",
    "widget.agent": "Support",
    "widget.prompt.cobrowse": "{agent} would like to browse this page with you. They will see this page (passwords stay hidden).",
    "widget.prompt.call": "{agent} would like to call you.",
    "widget.prompt.video": "{agent} would like to start a video call with you.",
    "widget.prompt.desktop": "{agent} asks you to share your screen.",
    "widget.prompt.show_screen": "{agent} would like to show you their screen.",
    "widget.prompt.conference": "{agent} invites you to a conference call.",
    "widget.accept": "Accept",
    "widget.decline": "Decline",
    "widget.stop": "Stop",
    "widget.active": "{kind} active",
    "widget.new_chat": "Start a new conversation",
    "widget.error": "Something went wrong: {message}",
    "widget.upload_failed": "Upload failed: {message}",
  },
  fr: {
    "kind.cobrowse": "Co-navigation",
    "kind.call": "Appel",
    "kind.video": "Appel vidéo",
    "kind.desktop": "Partage du bureau",
    "kind.show_screen": "Partage d'écran",
    "kind.conference": "Conférence téléphonique",
    "sys.conversation.started": "Conversation commencée",
    "sys.conversation.assigned": "{agent_name} a rejoint la conversation",
    "sys.conversation.redirected_agent": "Conversation redirigée vers {agent_name}",
    "sys.conversation.redirected_team": "Conversation redirigée vers l'équipe {team_name}",
    "sys.conversation.done": "Conversation résolue",
    "sys.conversation.reopened": "Conversation rouverte",
    "sys.request.pending": "{kind_label} demandé(e)",
    "sys.request.accepted": "{kind_label} accepté(e)",
    "sys.request.active": "{kind_label} commencé(e)",
    "sys.request.declined": "{kind_label} refusé(e)",
    "sys.request.cancelled": "{kind_label} annulé(e)",
    "sys.request.expired": "{kind_label} : demande expirée",
    "sys.request.ended": "{kind_label} terminé(e)",
    "sys.duration": " après {min} min {sec} s",
    "state.pending": "En attente de réponse",
    "state.accepted": "Accepté",
    "state.active": "Actif",
    "state.declined": "Refusé",
    "state.cancelled": "Annulé",
    "state.expired": "Expiré",
    "state.ended": "Terminé",
    "msg.note": "Note interne",
    "msg.flow": "Flow",
    "msg.article": "Article",
    "msg.download": "Télécharger",
    "msg.sending": "Envoi…",
    "msg.failed": "Non envoyé",
    "msg.delivered": "Distribué",
    "msg.read": "Lu",
    "flow.send": "Envoyer",
    "flow.done": "Merci, vos réponses ont été envoyées.",
    "flow.placeholder": "Votre réponse",
    "customer": "Client",
    "visitor": "Visiteur",
    "system": "Système",
    "typing": "{name} écrit…",
    "reconnecting": "Reconnexion…",
    "online_again": "De nouveau en ligne",
    "widget.title": "Discutez avec nous",
    "widget.subtitle": "Nous répondons en général en quelques minutes",
    "widget.open": "Ouvrir le chat",
    "widget.close": "Fermer le chat",
    "widget.hello": "Bonjour !",
    "widget.hello_sub": "Posez-nous vos questions sur votre commande, la livraison ou les retours. Une vraie personne vous répond.",
    "widget.name": "Votre nom (facultatif)",
    "widget.first": "Comment pouvons-nous vous aider ?",
    "widget.start": "Démarrer le chat",
    "widget.placeholder": "Écrivez un message…",
    "widget.attach": "Envoyer un fichier",
    "widget.send": "Envoyer",
    "widget.agent": "Support",
    "widget.prompt.cobrowse": "{agent} souhaite naviguer sur cette page avec vous. Il verra cette page (les mots de passe restent masqués).",
    "widget.prompt.call": "{agent} souhaite vous appeler.",
    "widget.prompt.video": "{agent} souhaite démarrer un appel vidéo avec vous.",
    "widget.prompt.desktop": "{agent} vous demande de partager votre écran.",
    "widget.prompt.show_screen": "{agent} souhaite vous montrer son écran.",
    "widget.prompt.conference": "{agent} vous invite à une conférence téléphonique.",
    "widget.accept": "Accepter",
    "widget.decline": "Refuser",
    "widget.stop": "Arrêter",
    "widget.active": "{kind} en cours",
    "widget.new_chat": "Démarrer une nouvelle conversation",
    "widget.error": "Une erreur est survenue : {message}",
    "widget.upload_failed": "Échec de l'envoi : {message}",
  },
};

/** A translator for `locale` ("fr-CA" -> fr; unknown -> en). `t(key, params)` fills `{name}`. */
export function translator(locale) {
  const lang = String(locale || "en").toLowerCase().slice(0, 2);
  const table = STRINGS[lang] || STRINGS.en;
  const t = (key, params = {}) => {
    const template = table[key] ?? STRINGS.en[key] ?? key;
    return template.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
  };
  t.lang = STRINGS[lang] ? lang : "en";
  return t;
}

/** A system message (code + params) in the reader's language; falls back to the server's body. */
export function systemText(msg, t) {
  const code = msg.code;
  if (!code) return msg.body || "";
  const key = "sys." + code;
  const params = { ...(msg.params || {}) };
  if (params.kind) params.kind_label = t("kind." + params.kind);
  const text = t(key, params);
  if (text === key) return msg.body || code;
  if (code === "request.ended" && typeof params.duration_s === "number") {
    const s = Math.floor(params.duration_s);
    return text + t("sys.duration", { min: Math.floor(s / 60), sec: s % 60 });
  }
  return text;
}

/** "14:05" today, "12 Mar 14:05" otherwise. */
export function shortTime(iso, lang = "en") {
  if (!iso) return "";
  const d = new Date(iso);
  const now = new Date();
  const time = d.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" });
  if (d.toDateString() === now.toDateString()) return time;
  return d.toLocaleDateString(lang, { day: "numeric", month: "short" }) + " " + time;
}

/** "12 KB" style sizes. */
export function fileSize(bytes) {
  if (!Number.isFinite(bytes)) return "";
  if (bytes < 1024) return bytes + " B";
  if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(bytes < 10240 ? 1 : 0) + " KB";
  return (bytes / 1024 / 1024).toFixed(1) + " MB";
}
