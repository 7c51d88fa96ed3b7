/*
 * filetransfer.js: sending files to the peer over RTCDataChannels (WebRTC
 * Blueprints ch. 2), with the peer's consent, progress on both sides, and
 * cancel from either side.
 *
 * The talk goes over the call's control channel (docs/PROTOCOL.md, "Between
 * the peers"): file-offer (name, size, type) → file-accept or file-decline;
 * the bytes then go over a data channel of their own, "file:<id>", opened by
 * the sender, in chunks; file-received confirms, file-cancel ends it early.
 *
 * Memory: the sender reads one chunk at a time (Blob.slice) and keeps at most
 * HIGH_WATER bytes queued in the channel, waiting for "bufferedamountlow"
 * before it reads more; the receiver folds its chunks into a Blob every
 * FOLD_BYTES, which the browser may keep on disk. A file of hundreds of MB is
 * never one ArrayBuffer on either side.
 *
 * A Transfer: {id, direction ("out"|"in"), name, size, mime, bytes (sent and
 * acknowledged by the channel / received), state, blob (received, when done)}.
 * States: offered → accepted → sending → done, or declined / cancelled /
 * failed. Events: "update" (detail: the Transfer) for every change.
 */

const CHUNK = 64 * 1024;
const HIGH_WATER = 4 * 1024 * 1024;
const LOW_WATER = 1024 * 1024;
const FOLD_BYTES = 16 * 1024 * 1024;
const LABEL_PREFIX = "file:";
const ID = /^[0-9a-f]{1,64}$/; // ids go into CSS selectors and channel labels: hex only
const ENDED = new Set(["done", "declined", "cancelled", "failed"]);

export class FileTransfers extends EventTarget {
  /** sendControl(msg) -> bool sends an object to the peer over the control channel. */
  constructor(sendControl) {
    super();
    this.sendControl = sendControl;
    this.pc = null;
    this.transfers = new Map(); // id -> Transfer, newest last
  }

  /** The current call's RTCPeerConnection, or null: a new or ended call ends every live transfer. */
  setCall(pc) {
    for (const t of this.transfers.values()) {
      if (!ENDED.has(t.state)) {
        this._finish(t, "failed", "the call ended");
      }
    }
    this.pc = pc;
  }

  /** Offer each of `files` to the peer. Returns the new Transfers. */
  offer(files) {
    const made = [];
    for (const file of files) {
      const t = this._add({
        id: newId(),
        direction: "out",
        name: file.name,
        size: file.size,
        mime: file.type || "",
        state: "offered",
      });
      t.file = file;
      if (!this.sendControl({ type: "file-offer", id: t.id, name: t.name, size: t.size, mime: t.mime })) {
        this._finish(t, "failed", "not connected to the peer");
      }
      made.push(t);
    }
    return made;
  }

  /** The receiver says yes: the sender will open the file's channel. */
  accept(id) {
    const t = this.transfers.get(id);
    if (t && t.direction === "in" && t.state === "offered") {
      t.state = "accepted";
      this.sendControl({ type: "file-accept", id });
      this._update(t);
    }
  }

  decline(id) {
    const t = this.transfers.get(id);
    if (t && t.direction === "in" && t.state === "offered") {
      this.sendControl({ type: "file-decline", id });
      this._finish(t, "declined");
    }
  }

  /** Either side, at any point before the end. */
  cancel(id) {
    const t = this.transfers.get(id);
    if (t && !ENDED.has(t.state)) {
      this.sendControl({ type: "file-cancel", id });
      this._finish(t, "cancelled", "you cancelled");
    }
  }

  /** A control message from the peer; false when it is not about files. */
  handleControl(msg) {
    const t = typeof msg.id === "string" ? this.transfers.get(msg.id) : undefined;
    switch (msg.type) {
      case "file-offer":
        if (!t && typeof msg.id === "string" && ID.test(msg.id) && validSize(msg.size)) {
          this._add({
            id: msg.id,
            direction: "in",
            name: String(msg.name || "file").slice(0, 255),
            size: msg.size,
            mime: String(msg.mime || "").slice(0, 255),
            state: "offered",
          });
        }
        return true;
      case "file-accept":
        if (t && t.direction === "out" && t.state === "offered") {
          this._send(t).catch((err) => {
            // The file became unreadable, or the connection closed under us.
            if (!ENDED.has(t.state)) {
              this.sendControl({ type: "file-cancel", id: t.id });
              this._finish(t, "failed", err?.message || String(err));
            }
          });
        }
        return true;
      case "file-decline":
        if (t && t.direction === "out" && t.state === "offered") {
          this._finish(t, "declined");
        }
        return true;
      case "file-cancel":
        if (t && !ENDED.has(t.state)) {
          this._finish(t, "cancelled", "the peer cancelled");
        }
        return true;
      case "file-received":
        if (t && t.direction === "out" && !ENDED.has(t.state)) {
          t.bytes = t.size;
          this._finish(t, "done");
        }
        return true;
      default:
        return false;
    }
  }

  /** A data channel the peer opened; false when it is not a file's. */
  handleChannel(channel) {
    if (!channel.label.startsWith(LABEL_PREFIX)) {
      return false;
    }
    const t = this.transfers.get(channel.label.slice(LABEL_PREFIX.length));
    if (t?.direction !== "in" || t.state !== "accepted") {
      channel.close(); // not asked for, or cancelled meanwhile
      return true;
    }
    this._receive(t, channel);
    return true;
  }

  // ------------------------------------------------------------- sending

  async _send(t) {
    if (!this.pc) {
      this._finish(t, "failed", "not in a call");
      return;
    }
    const channel = this.pc.createDataChannel(LABEL_PREFIX + t.id, { ordered: true });
    channel.binaryType = "arraybuffer";
    channel.bufferedAmountLowThreshold = LOW_WATER;
    t.channel = channel;
    t.state = "sending";
    t.bytes = 0;
    this._update(t);
    t.sent = 0;
    channel.addEventListener("close", () => {
      // Closed with bytes still to send: the peer gave up. With all of them
      // queued, the peer's file-received or file-cancel decides.
      if (t.state === "sending" && t.sent < t.size) {
        this._finish(t, "cancelled", "the channel closed");
      }
    });
    await waitFor(channel, "open");
    const chunk = Math.min(CHUNK, this.pc?.sctp?.maxMessageSize || CHUNK);
    while (t.sent < t.size && t.state === "sending" && channel.readyState === "open") {
      if (channel.bufferedAmount > HIGH_WATER) {
        await waitFor(channel, "bufferedamountlow");
        this._progress(t);
        continue;
      }
      const buffer = await t.file.slice(t.sent, t.sent + chunk).arrayBuffer();
      if (t.state !== "sending" || channel.readyState !== "open") {
        break;
      }
      channel.send(buffer);
      t.sent += buffer.byteLength;
      this._progress(t);
    }
    // Everything is queued; the receiver's file-received says it all arrived.
    // The receiver closes the channel, so nothing queued is cut off.
  }

  _progress(t) {
    const queued = t.channel && t.channel.readyState === "open" ? t.channel.bufferedAmount : 0;
    const bytes = Math.max(0, t.sent - queued);
    if (bytes !== t.bytes) {
      t.bytes = bytes;
      this._update(t);
    }
  }

  // ------------------------------------------------------------ receiving

  _receive(t, channel) {
    channel.binaryType = "arraybuffer";
    t.channel = channel;
    t.state = "sending";
    t.bytes = 0;
    t.parts = []; // Blobs of FOLD_BYTES or so
    t.pending = []; // ArrayBuffers not yet folded
    t.pendingBytes = 0;
    this._update(t);
    channel.addEventListener("message", (event) => {
      if (t.state !== "sending") {
        return;
      }
      const data = event.data;
      if (!(data instanceof ArrayBuffer)) {
        return;
      }
      t.bytes += data.byteLength;
      if (t.bytes > t.size) {
        this.sendControl({ type: "file-cancel", id: t.id });
        this._finish(t, "failed", "the peer sent more than it announced");
        return;
      }
      t.pending.push(data);
      t.pendingBytes += data.byteLength;
      if (t.pendingBytes >= FOLD_BYTES) {
        t.parts.push(new Blob(t.pending));
        t.pending = [];
        t.pendingBytes = 0;
      }
      if (t.bytes === t.size) {
        t.blob = new Blob([...t.parts, ...t.pending], { type: t.mime });
        t.parts = t.pending = null;
        this.sendControl({ type: "file-received", id: t.id });
        this._finish(t, "done");
      } else {
        this._update(t);
      }
    });
    channel.addEventListener("close", () => {
      if (t.state === "sending") {
        this._finish(t, "cancelled", "the channel closed");
      }
    });
    if (t.size === 0) {
      t.blob = new Blob([], { type: t.mime });
      this.sendControl({ type: "file-received", id: t.id });
      this._finish(t, "done");
    }
  }

  // --------------------------------------------------------------- common

  _add(fields) {
    const t = { bytes: 0, blob: null, reason: "", ...fields };
    this.transfers.set(t.id, t);
    this._update(t);
    return t;
  }

  _finish(t, state, reason) {
    t.state = state;
    t.reason = reason || "";
    if (t.channel) {
      t.channel.close();
      t.channel = null;
    }
    t.parts = t.pending = null;
    t.file = null;
    this._update(t);
  }

  _update(t) {
    this.dispatchEvent(new CustomEvent("update", { detail: t }));
  }
}

function validSize(size) {
  return Number.isSafeInteger(size) && size >= 0;
}

function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Resolves on `type`, or when the channel closes (the caller then checks its state). */
function waitFor(channel, type) {
  if (type === "open" && channel.readyState === "open") {
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const done = () => {
      channel.removeEventListener(type, done);
      channel.removeEventListener("close", done);
      resolve();
    };
    channel.addEventListener(type, done);
    channel.addEventListener("close", done);
  });
}

/** "4.2 MB" */
export function formatSize(bytes) {
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${value} bytes` : `${value.toFixed(value < 100 ? 1 : 0)} ${units[unit]}`;
}
