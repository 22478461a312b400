// POST /api/uploads (multipart: conversation_id, file) with the caller's bearer token.
import { HubError } from "./hub.js";

/** Upload `file` into `conversationId`; resolves with the attachment `{id, name, mime, size, kind, url, ...}`. */
export async function upload(server, token, conversationId, file) {
  const form = new FormData();
  form.append("conversation_id", conversationId);
  form.append("file", file, file.name || "file");
  let res;
  try {
    res = await fetch((server || "") + "/api/uploads", {
      method: "POST",
      headers: { Authorization: "Bearer " + token },
      body: form,
    });
  } catch (err) {
    throw new HubError("network", "the upload could not reach the server");
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok || !body || !body.attachment) {
    const e = (body && body.error) || {};
    throw new HubError(e.code || "http_" + res.status, e.message || "upload failed (" + res.status + ")");
  }
  return body.attachment;
}

/** The message kind for an uploaded attachment: the kind asked for if the sniffed type matches, else
 * "file" (always allowed); with nothing asked for, the sniffed kind. */
export function kindFor(attachment, wanted) {
  if (wanted) return attachment.kind === wanted ? wanted : "file";
  return ["image", "video", "audio"].includes(attachment.kind) ? attachment.kind : "file";
}
