// Downloads of file attachments with visible progress. A file is fetched with a stream reader
// against its Content-Length (exposed to the widget's other origins by the server's CORS), shown as a
// progress bar in the message with Cancel, then handed to the browser's save dialog from a blob URL.
// Why not only the browser's own download: inside the widget on a customer's site, and for screen
// readers, the download shelf is out of sight; here the progress is in the conversation, announced,
// and cancellable. Attachments are capped by the server (20 MB by default), so holding one in memory
// is fine. Video and audio stream natively (Range requests), images are thumbnails.
import { h } from "./dom.js";

/** GET `url` as a Blob; `onProgress(received, total)` after each chunk (total 0 when unknown). */
export async function fetchWithProgress(url, { onProgress, signal } = {}) {
  const res = await fetch(url, { signal });
  if (!res.ok) throw new Error("HTTP " + res.status);
  const total = Number(res.headers.get("Content-Length")) || 0;
  const type = res.headers.get("Content-Type") || "application/octet-stream";
  if (!res.body || !res.body.getReader) {
    const blob = await res.blob();
    if (onProgress) onProgress(blob.size, blob.size);
    return blob;
  }
  const reader = res.body.getReader();
  const chunks = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.byteLength;
    if (onProgress) onProgress(received, total);
  }
  return new Blob(chunks, { type });
}

/** Hand `blob` to the browser as a file named `name`. */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name || "file", hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

/**
 * Download the attachment of a file link into `box` (the message's attachment element): a progress
 * bar and Cancel while it runs, then the save dialog. A second click while it runs does nothing.
 */
export async function downloadInto(box, url, name, t) {
  if (box.dataset.downloading === "1") return;
  box.dataset.downloading = "1";
  const controller = new AbortController();
  const bar = h("progress", { class: "download__bar", max: "1", "aria-label": t("msg.downloading", { name }) });
  const percent = h("span", { class: "download__percent", "aria-hidden": "true" });
  const cancel = h("button", { class: "download__cancel", type: "button", "aria-label": t("msg.download_cancel"),
    on: { click: () => controller.abort() } }, t("upload.cancel"));
  const row = h("div", { class: "download", role: "group", "aria-label": t("msg.downloading", { name }) }, bar, percent, cancel);
  box.append(row);
  try {
    const blob = await fetchWithProgress(url, {
      signal: controller.signal,
      onProgress: (received, total) => {
        if (total) {
          bar.value = received / total;
          percent.textContent = t.percent(received / total);
        } else {
          bar.removeAttribute("value"); // indeterminate
          percent.textContent = t.size(received);
        }
      },
    });
    saveBlob(blob, name);
    row.remove();
  } catch (err) {
    if (err && err.name === "AbortError") {
      row.remove();
    } else {
      row.replaceChildren(h("span", { class: "download__error", role: "alert", text: t("msg.download_failed", { message: err.message }) }));
      setTimeout(() => row.remove(), 6000);
    }
  } finally {
    delete box.dataset.downloading;
  }
}
