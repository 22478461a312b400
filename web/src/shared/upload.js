// POST /api/uploads (multipart: conversation_id, file) with the caller's bearer token, over
// XMLHttpRequest: unlike fetch, it reports the request body's progress (`upload.onprogress`), and it
// can be aborted. `uploadView()` is the progress bar with Cancel that both pages show while it runs.
import { HubError } from "./hub.js";
import { h } from "./dom.js";
import { errorText } from "./i18n.js";

/**
 * Upload `file` into `conversationId`. Returns `{promise, abort}`: the promise resolves with the
 * attachment `{id, name, mime, size, kind, url, ...}` or rejects with a HubError (`aborted` after
 * `abort()`); `onProgress(sent, total)` follows the bytes sent.
 */
export function startUpload(server, token, conversationId, file, { onProgress } = {}) {
  const form = new FormData();
  form.append("conversation_id", conversationId);
  form.append("file", file, file.name || "file");
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    xhr.open("POST", (server || "") + "/api/uploads");
    xhr.setRequestHeader("Authorization", "Bearer " + token);
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => {
      if (onProgress) onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    };
    xhr.onload = () => {
      const body = xhr.response;
      if (xhr.status >= 200 && xhr.status < 300 && body && body.attachment) return resolve(body.attachment);
      const e = (body && body.error) || {};
      reject(new HubError(e.code || (xhr.status === 413 ? "too_large" : "http_" + xhr.status),
        e.message || "upload failed (" + xhr.status + ")"));
    };
    xhr.onerror = () => reject(new HubError("network", "the upload could not reach the server"));
    xhr.onabort = () => reject(new HubError("aborted", "the upload was cancelled"));
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}

/** Upload `file`; resolves with the attachment (no progress, no cancel). */
export function upload(server, token, conversationId, file) {
  return startUpload(server, token, conversationId, file).promise;
}

/**
 * A running upload as a row: the file name, a progress bar (`<progress>`, named for screen readers),
 * the percentage and a Cancel button. `view.update(sent, total)` moves it; `view.el` is the row.
 */
export function uploadView(t, file, onCancel) {
  const bar = h("progress", { class: "upload__bar", max: "1", value: "0", "aria-label": t("upload.progress", { name: file.name }) });
  const percent = h("span", { class: "upload__percent", "aria-hidden": "true", text: t.percent(0) });
  const cancel = h("button", { class: "upload__cancel", type: "button", "aria-label": t("upload.cancel_label", { name: file.name }),
    on: { click: () => onCancel() } }, t("upload.cancel"));
  const el = h("div", { class: "upload", data: { name: file.name } },
    h("span", { class: "upload__name", text: file.name }), bar, percent, cancel);
  return {
    el,
    bar,
    update(sent, total) {
      const fraction = total ? sent / total : 0;
      bar.value = fraction;
      percent.textContent = t.percent(fraction);
    },
  };
}

/** An upload error in the reader's words. */
export function uploadError(t, err) {
  if (err && err.code === "too_large") return t("upload.failed", { message: t("upload.too_large") });
  if (err && err.code === "network") return t("upload.failed", { message: t("upload.network") });
  return t("upload.failed", { message: errorText(t, err) });
}

/** The message kind for an uploaded attachment: the kind asked for if the sniffed type matches, else
 * "file" (always allowed); with nothing asked for, the sniffed kind. */
export function kindFor(attachment, wanted) {
  if (wanted) return attachment.kind === wanted ? wanted : "file";
  return ["image", "video", "audio"].includes(attachment.kind) ? attachment.kind : "file";
}
