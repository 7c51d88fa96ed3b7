/*
 * transferlist.js: the page's part of file transfer (filetransfer.js does the
 * transfers): the file picker, dropping files on the call, and one row per
 * transfer with its name, size, type, progress bar, Accept / Decline / Cancel
 * and, once received, a Save link to the received Blob.
 *
 * Names and types come from the peer: they are only ever set with textContent.
 */
import { formatSize } from "./filetransfer.js";
import { show } from "./ui.js";

/** Wire `files` (a FileTransfers) to `input` (type=file), `dropZone` and the list `list`. */
export function showTransfers({ files, input, dropZone, list }) {
  const el = { fileInput: input, transfers: list };

  el.fileInput.addEventListener("change", () => {
    const picked = Array.from(el.fileInput.files);
    el.fileInput.value = "";
    files.offer(picked);
  });

  dropZone.addEventListener("dragover", (event) => {
    if (!el.fileInput.disabled && event.dataTransfer.types.includes("Files")) {
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      dropZone.classList.add("dropping");
    }
  });
  dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dropping"));
  dropZone.addEventListener("drop", (event) => {
    dropZone.classList.remove("dropping");
    if (!el.fileInput.disabled && event.dataTransfer.files.length) {
      event.preventDefault();
      files.offer(Array.from(event.dataTransfer.files));
    }
  });

  const STATE_TEXT = {
    offered: { out: "Waiting for your peer to accept", in: "Your peer offers this file" },
    accepted: { out: "Accepted", in: "Accepted, waiting for the data" },
    sending: { out: "Sending", in: "Receiving" },
    done: { out: "Sent", in: "Received" },
    declined: { out: "Your peer declined it", in: "Declined" },
    cancelled: { out: "Cancelled", in: "Cancelled" },
    failed: { out: "Failed", in: "Failed" },
  };

  /** One row per transfer, made once and updated in place (textContent only). */
  files.addEventListener("update", (event) => {
    const t = event.detail;
    let row = el.transfers.querySelector(`li[data-id="${t.id}"]`);
    if (!row) {
      row = transferRow(t);
      el.transfers.appendChild(row);
    }
    row.dataset.state = t.state;
    const percent = t.size > 0 ? Math.floor((100 * t.bytes) / t.size) : t.state === "done" ? 100 : 0;
    const bar = row.querySelector("progress");
    bar.value = t.size > 0 ? t.bytes : t.state === "done" ? 1 : 0;
    bar.max = Math.max(t.size, 1);
    bar.textContent = `${percent}%`;
    const reason = t.reason ? ` (${t.reason})` : "";
    row.querySelector(".state").textContent =
      `${STATE_TEXT[t.state][t.direction]}${reason}${t.state === "sending" ? `: ${percent}%` : ""}`;
    const live = t.state === "offered" || t.state === "accepted" || t.state === "sending";
    show(row.querySelector(".accept"), t.direction === "in" && t.state === "offered");
    show(row.querySelector(".decline"), t.direction === "in" && t.state === "offered");
    show(row.querySelector(".cancel"), live && !(t.direction === "in" && t.state === "offered"));
    const link = row.querySelector("a.download");
    if (t.state === "done" && t.blob && !link.href) {
      link.href = URL.createObjectURL(t.blob);
      show(link, true);
    }
  });

  function transferRow(t) {
    const row = document.createElement("li");
    row.dataset.id = t.id;
    row.dataset.direction = t.direction;
    const name = document.createElement("strong");
    name.className = "name";
    name.textContent = t.name;
    const meta = document.createElement("span");
    meta.className = "muted meta";
    meta.textContent = `${formatSize(t.size)}${t.mime ? `, ${t.mime}` : ""}`;
    const bar = document.createElement("progress");
    bar.setAttribute("aria-label", `${t.direction === "in" ? "Receiving" : "Sending"} ${t.name}`);
    const state = document.createElement("span");
    state.className = "state";
    const link = document.createElement("a");
    link.className = "download";
    link.download = t.name;
    link.textContent = "Save";
    link.hidden = true;
    row.append(name, meta, bar, state, link);
    for (const [cls, label, act] of [
      ["accept", "Accept", (id) => files.accept(id)],
      ["decline", "Decline", (id) => files.decline(id)],
      ["cancel", "Cancel", (id) => files.cancel(id)],
    ]) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = cls;
      button.textContent = label;
      button.setAttribute("aria-label", `${label} ${t.name}`);
      button.hidden = true;
      button.addEventListener("click", () => act(t.id));
      row.appendChild(button);
    }
    return row;
  }
}
