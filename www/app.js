/*
 * app.js: the video-call page (index.html). The protocol is in roomclient.js;
 * the shared page parts in ui.js; what we send (camera, screen, a video file)
 * in outgoing.js; files in filetransfer.js. This module wires them to the page.
 *
 *   /            create a room, show its link, wait for a peer
 *   /?room=N     enter room N and call the peer in it
 *   &relay=1     force iceTransportPolicy "relay" (operators testing TURN)
 *   &token=T     a personal sign-in token, for a server in token mode
 *                (config.json "auth":"token"); it goes on the WebSocket URL.
 *                With "auth":"password" the page asks for a name and password.
 *
 * For tests and debugging: window.rtc is the RoomClient (window.rtc.pc the
 * current RTCPeerConnection, null between calls; window.rtc.room the room),
 * window.outgoing the OutgoingMedia, window.files the FileTransfers.
 *
 * Text from the network is only ever put in the page with textContent.
 */
import { check } from "./browsersupport.js";
import { formatDuration, watchQuality } from "./callquality.js";
import { FileTransfers, formatSize } from "./filetransfer.js";
import { OutgoingMedia } from "./outgoing.js";
import { RoomClient } from "./roomclient.js";
import { parseRoom } from "./rtclib.js";
import {
  $,
  Chat,
  getLocalMedia,
  isPressed,
  notice,
  playRemote,
  setPressed,
  show,
  unmuteOnClick,
} from "./ui.js";

const el = {
  statusText: $("status-text"),
  share: $("share"),
  shareLink: $("share-link"),
  copyLink: $("copy-link"),
  copyResult: $("copy-result"),
  wrongRoom: $("wrong-room"),
  wrongRoomMessage: $("wrong-room-message"),
  newRoom: $("new-room"),
  ended: $("ended"),
  endedMessage: $("ended-message"),
  rejoin: $("rejoin"),
  endedNewRoom: $("ended-new-room"),
  mediaNotice: $("media-notice"),
  localVideo: $("localVideo"),
  localCaption: $("local-caption"),
  fileVideo: $("fileVideo"),
  remoteFigure: $("remote-figure"),
  remoteVideo: $("remoteVideo"),
  remoteCaption: $("remote-caption"),
  peerMuted: $("peer-muted"),
  peerCameraOff: $("peer-camera-off"),
  peerSharing: $("peer-sharing"),
  unmuteRemote: $("unmute-remote"),
  callTimer: $("call-timer"),
  quality: $("quality"),
  muteMic: $("mute-mic"),
  cameraOff: $("camera-off"),
  shareScreen: $("share-screen"),
  sendVideo: $("send-video"),
  videoFile: $("video-file"),
  fullscreen: $("fullscreen"),
  pip: $("pip"),
  hangUp: $("hang-up"),
  cameraSelect: $("camera-select"),
  micSelect: $("mic-select"),
  fileInput: $("file-input"),
  transfers: $("transfers"),
  chatLog: $("chat-log"),
  chatForm: $("chat-form"),
  chatInput: $("chat-input"),
  chatSend: $("chat-send"),
  serverNote: $("server-note"),
  signIn: $("sign-in"),
  signInForm: $("sign-in-form"),
  signInMessage: $("sign-in-message"),
  signInName: $("sign-in-name"),
  signInPassword: $("sign-in-password"),
};

const params = new URLSearchParams(window.location.search);
const forceRelay = params.get("relay") === "1";
const token = params.get("token") || null;
const setStatus = (text) => {
  el.statusText.textContent = text;
};
const showMediaNotice = notice(el.mediaNotice);
const showServerNote = notice(el.serverNote);

let localMedia = null; // Promise of the MediaStream (or null), started once
let client = null;
let pageDone = false; // set once the page will not call again (wrong room, hang-up)

const outgoing = new OutgoingMedia();
const files = new FileTransfers((msg) => (client ? client.sendControl(msg) : false));
window.outgoing = outgoing;
window.files = files;

/**
 * The page's address with the given room (and ?relay=1 kept, so both ends
 * test TURN). The sign-in token is kept only when `own` is true, for this
 * person's own navigation (rejoin, new room): a token is personal, so the
 * share link never carries it.
 */
function pageUrl(room, own) {
  const url = new URL(window.location.pathname, window.location.href);
  if (room !== null && room !== undefined) {
    url.searchParams.set("room", String(room)); // String() of a safe integer: exact digits
  }
  if (forceRelay) {
    url.searchParams.set("relay", "1");
  }
  if (own && token) {
    url.searchParams.set("token", token);
  }
  return url.href;
}

function startNewRoom() {
  window.location.href = pageUrl(null, true);
}

// ------------------------------------------------------------ share link

function showShareLink(room) {
  const link = pageUrl(room);
  el.shareLink.href = link;
  el.shareLink.textContent = link;
  show(el.share, true);
}

async function copyText(text) {
  if (!(navigator.clipboard && window.isSecureContext)) {
    throw new Error("copy is not available");
  }
  await navigator.clipboard.writeText(text);
}

el.copyLink.addEventListener("click", () => {
  const link = el.shareLink.href;
  copyText(link).then(
    () => {
      el.copyResult.textContent = "Copied!";
    },
    () => {
      el.copyResult.textContent = "";
      window.prompt("Copy this link:", link);
    },
  );
  setTimeout(() => {
    el.copyResult.textContent = "";
  }, 2500);
});

// ------------------------------------------------------------------ chat

const chat = new Chat({
  log: el.chatLog,
  form: el.chatForm,
  input: el.chatInput,
  button: el.chatSend,
  send: (text) => client?.sendChat(text),
  onNotSent: () => showServerNote("Message not sent: not connected to the server."),
});

// ------------------------------------------------------------ local media

async function startLocalMedia() {
  const stream = await getLocalMedia({
    say: showMediaNotice,
    without: "You can still chat and see and hear your peer.",
  });
  if (pageDone) {
    // Wrong room or hang-up while the camera was starting: let it go.
    if (stream) {
      for (const track of stream.getTracks()) {
        track.stop();
      }
    }
    return null;
  }
  outgoing.setCamera(stream);
  el.muteMic.disabled = !stream || stream.getAudioTracks().length === 0;
  el.cameraOff.disabled = !stream || stream.getVideoTracks().length === 0;
  el.shareScreen.disabled = !navigator.mediaDevices?.getDisplayMedia;
  el.sendVideo.disabled = !HTMLMediaElement.prototype.captureStream;
  listDevices();
  return stream;
}

el.muteMic.addEventListener("click", () => {
  const pressed = !isPressed(el.muteMic);
  setPressed(el.muteMic, pressed);
  outgoing.setMicrophoneOn(!pressed);
});

el.cameraOff.addEventListener("click", () => {
  const pressed = !isPressed(el.cameraOff);
  setPressed(el.cameraOff, pressed);
  outgoing.setCameraOn(!pressed);
});

el.shareScreen.addEventListener("click", () => {
  if (outgoing.source === "screen") {
    outgoing.stopSharing();
    return;
  }
  outgoing.shareScreen().catch((err) => {
    if (err && err.name !== "NotAllowedError") {
      showMediaNotice(`Could not share the screen (${err.name || err}).`);
    }
  });
});

el.sendVideo.addEventListener("click", () => {
  if (outgoing.source === "file") {
    outgoing.stopSharing();
  } else {
    el.videoFile.click();
  }
});

el.videoFile.addEventListener("change", () => {
  const file = el.videoFile.files[0];
  el.videoFile.value = "";
  if (file) {
    outgoing.shareFile(file, el.fileVideo).catch((err) => {
      showMediaNotice(`Could not play that video (${err?.name || err}).`);
    });
  }
});

/** Show what we send, and tell the peer what it gets. */
outgoing.addEventListener("change", () => {
  const preview = outgoing.preview;
  if (el.localVideo.srcObject !== preview) {
    el.localVideo.srcObject = preview;
  }
  const source = outgoing.source;
  show(el.localVideo, source !== "file");
  show(el.fileVideo, source === "file");
  el.localVideo.classList.toggle("mirrored", source === "camera");
  el.localCaption.textContent = { camera: "You", screen: "Your screen", file: "Your video" }[source];
  setPressed(el.shareScreen, source === "screen");
  setPressed(el.sendVideo, source === "file");
  sendMediaState();
});

function sendMediaState() {
  if (client) {
    client.sendControl({
      type: "media-state",
      audio: outgoing.audioOn,
      video: outgoing.videoOn,
      source: outgoing.source,
    });
  }
}

// --------------------------------------------------------------- devices

async function listDevices() {
  if (!navigator.mediaDevices?.enumerateDevices) {
    return;
  }
  const devices = await navigator.mediaDevices.enumerateDevices();
  fillDevices(el.cameraSelect, devices, "videoinput", "video");
  fillDevices(el.micSelect, devices, "audioinput", "audio");
}

function fillDevices(select, devices, kind, trackKind) {
  const track = outgoing.camera?.getTracks().find((t) => t.kind === trackKind);
  const current = track ? track.getSettings().deviceId : "";
  select.textContent = "";
  devices
    .filter((d) => d.kind === kind && d.deviceId)
    .forEach((d, i) => {
      const option = document.createElement("option");
      option.value = d.deviceId;
      option.textContent = d.label || `${kind === "videoinput" ? "Camera" : "Microphone"} ${i + 1}`;
      option.selected = d.deviceId === current;
      select.appendChild(option);
    });
  select.disabled = select.options.length < 2;
}

for (const [select, kind] of [
  [el.cameraSelect, "video"],
  [el.micSelect, "audio"],
]) {
  select.addEventListener("change", () => {
    outgoing.useDevice(kind, select.value).catch((err) => {
      showMediaNotice(`Could not switch to that device (${err?.name || err}).`);
      listDevices();
    });
  });
}

if (navigator.mediaDevices?.addEventListener) {
  navigator.mediaDevices.addEventListener("devicechange", () => {
    if (outgoing.camera) {
      listDevices();
    }
  });
}

function stopLocalMedia() {
  pageDone = true;
  outgoing.stop();
  for (const button of [el.muteMic, el.cameraOff, el.shareScreen, el.sendVideo]) {
    button.disabled = true;
  }
}

// ----------------------------------------------------------- remote media

function showRemote(stream) {
  el.remoteCaption.textContent = "Peer";
  playRemote(el.remoteVideo, stream, el.unmuteRemote);
  el.fullscreen.disabled = !document.fullscreenEnabled;
  el.pip.disabled = !document.pictureInPictureEnabled;
}

unmuteOnClick(el.unmuteRemote, [el.remoteVideo]);

function clearRemote(caption) {
  el.remoteVideo.srcObject = null;
  el.remoteCaption.textContent = caption;
  show(el.unmuteRemote, false);
  showPeerState(null);
  el.fullscreen.disabled = true;
  el.pip.disabled = true;
  if (document.pictureInPictureElement) {
    document.exitPictureInPicture().catch(() => {});
  }
}

el.fullscreen.addEventListener("click", () => {
  if (document.fullscreenElement) {
    document.exitFullscreen().catch(() => {});
  } else {
    el.remoteFigure.requestFullscreen().catch(() => {});
  }
});

el.pip.addEventListener("click", () => {
  if (document.pictureInPictureElement) {
    document.exitPictureInPicture().catch(() => {});
  } else {
    el.remoteVideo.requestPictureInPicture().catch((err) => {
      showServerNote(`Picture in picture is not available (${err?.name || err}).`);
    });
  }
});

const SOURCE_TEXT = { screen: "Peer is sharing their screen", file: "Peer is sending a video" };

/** The peer's mute, camera and sharing state (a media-state message), or null for none. */
function showPeerState(state) {
  show(el.peerMuted, !!state && state.audio === false);
  show(el.peerCameraOff, !!state && state.video === false);
  const sharing = state ? SOURCE_TEXT[state.source] : undefined;
  el.peerSharing.textContent = sharing || "";
  show(el.peerSharing, !!sharing);
}

// --------------------------------------------------------- call info

let timer = null;
let stopQuality = null;
const QUALITY_TEXT = { good: "Good connection", fair: "Fair connection", poor: "Poor connection" };

function startCallInfo(pc) {
  stopCallInfo();
  const started = Date.now();
  const tick = () => {
    el.callTimer.textContent = formatDuration(Date.now() - started);
  };
  tick();
  timer = setInterval(tick, 1000);
  show(el.callTimer, true);
  stopQuality = watchQuality(pc, (q) => {
    el.quality.dataset.level = q.level;
    el.quality.textContent = QUALITY_TEXT[q.level];
    const rtt = q.rtt === null ? "unknown" : `${Math.round(q.rtt * 1000)} ms`;
    el.quality.title = `Round trip ${rtt}, ${(q.loss * 100).toFixed(1)}% packets lost`;
    show(el.quality, true);
  });
}

function stopCallInfo() {
  clearInterval(timer);
  timer = null;
  if (stopQuality) {
    stopQuality();
    stopQuality = null;
  }
  show(el.callTimer, false);
  show(el.quality, false);
}

// ----------------------------------------------------------------- files

el.fileInput.addEventListener("change", () => {
  const picked = Array.from(el.fileInput.files);
  el.fileInput.value = "";
  files.offer(picked);
});

const dropZone = document.querySelector("main.call");
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

// --------------------------------------------------------------- status

const CALL_STATUS = {
  new: "Connecting…",
  connecting: "Connecting…",
  connected: "Connected",
  disconnected: "Connection interrupted, trying to recover…",
  failed: "The connection failed. Try again, or ask your peer to rejoin.",
};

// WRONGROOM reasons the server gives (rtcserver/protocol.py); anything else gets the first line.
const WRONG_ROOM_TEXT = {
  "": "This room link is not valid, or the room is full.",
  "no-such-room": "This room does not exist (any more): everyone in it has left.",
  "room-full": "This room is full: a call already has two people in it.",
  "invalid-room": "This is not a valid room link.",
  "already-in-room": "This page is already in a room.",
};

function showWrongRoom(reason) {
  setStatus("Wrong room");
  show(el.share, false);
  chat.enable(false);
  el.hangUp.disabled = true;
  stopLocalMedia();
  show(document.querySelector("main.call"), false); // nothing to show: no call will happen
  const known = Object.hasOwn(WRONG_ROOM_TEXT, reason);
  el.wrongRoomMessage.textContent = WRONG_ROOM_TEXT[known ? reason : ""];
  show(el.wrongRoom, true);
}

function showEnded(message, canRejoin) {
  chat.enable(false);
  el.hangUp.disabled = true;
  el.fileInput.disabled = true;
  stopLocalMedia();
  stopCallInfo();
  files.setCall(null);
  clearRemote("Call ended");
  show(el.signIn, false);
  el.endedMessage.textContent = message;
  show(el.rejoin, canRejoin !== false && client !== null && client.room !== null);
  show(el.ended, true);
}

// --------------------------------------------------------------- sign-in

const AUTH_TEXT = {
  "auth-failed": "Wrong name or password. Try again.",
  "auth-throttled": "Too many failed sign-ins. Wait a minute, then try again.",
  "auth-required": "This server asks for a name and password.",
};

let signInNote = "This server asks you to sign in.";

/** credentials() for RoomClient in password mode: the form's name and password, once submitted. */
function askForPassword() {
  setStatus("Sign in to continue");
  el.signInMessage.textContent = signInNote;
  show(el.signIn, true);
  el.signInName.focus();
  return new Promise((resolve) => {
    el.signInForm.onsubmit = (event) => {
      event.preventDefault();
      el.signInForm.onsubmit = null;
      show(el.signIn, false);
      setStatus("Signing in…");
      resolve({ name: el.signInName.value.trim(), password: el.signInPassword.value });
      el.signInPassword.value = "";
    };
  });
}

function onAuthError(err, room) {
  if (err.code === "auth-failed" || err.code === "auth-throttled") {
    signInNote = AUTH_TEXT[err.code];
    connect(room); // a refused sign-in closes the socket: the next try is a new one
    return;
  }
  setStatus("Not signed in");
  showEnded(AUTH_TEXT[err.code] || err.message, false);
}

el.newRoom.addEventListener("click", startNewRoom);
el.endedNewRoom.addEventListener("click", startNewRoom);
el.rejoin.addEventListener("click", () => {
  window.location.href = pageUrl(client.room, true);
});
el.hangUp.addEventListener("click", () => {
  if (client) {
    client.hangUp();
    setStatus("You left the call");
    showEnded("You left the call.");
  }
});

// ----------------------------------------------------------------- start

function main() {
  const support = check();
  if (!support.ok) {
    setStatus(support.message);
    return;
  }
  let room = null;
  if (params.has("room")) {
    room = parseRoom(params.get("room"));
    if (room === null) {
      showWrongRoom("invalid-room");
      return;
    }
  }
  localMedia = startLocalMedia();
  connect(room);
}

/** A RoomClient for `room` (null: a new one), wired to the page. Called again after a refused password. */
function connect(room) {
  const self = new RoomClient({
    room,
    forceRelay,
    localMedia,
    token,
    credentials: askForPassword,
  });
  client = self;
  window.rtc = self;

  /** Listen to this client only while it is the page's current one. */
  function on(type, handler) {
    self.addEventListener(type, (event) => {
      if (client === self) {
        handler(event);
      }
    });
  }

  on("room", (event) => {
    if (room === null) {
      // A joiner's link is shown once the room has taken it ("calling"),
      // so a wrong room never flashes a link.
      showShareLink(event.detail.room);
      setStatus("Waiting for someone to join. Share this link:");
    }
  });
  on("wrongroom", (event) => showWrongRoom(event.detail.reason));
  on("peerjoined", () => {
    setStatus("A peer is joining…");
    chat.enable(true);
  });
  on("calling", () => {
    showShareLink(self.room);
    setStatus("Connecting…");
    chat.enable(true);
  });
  on("call", (event) => {
    const call = event.detail;
    files.setCall(call.pc);
    outgoing.setCall(call.pc);
  });
  on("peerleft", () => {
    setStatus("Your peer left. Waiting for someone to join this link:");
    clearRemote("Peer left");
    chat.enable(false);
    el.fileInput.disabled = true;
    stopCallInfo();
    files.setCall(null);
  });
  on("remotestream", (event) => showRemote(event.detail));
  on("callstate", (event) => {
    const state = event.detail;
    if (CALL_STATUS[state]) {
      setStatus(CALL_STATUS[state]);
    }
    if (state === "connected" && timer === null && self.pc) {
      startCallInfo(self.pc);
    } else if (state === "closed" || state === "failed") {
      stopCallInfo();
    }
  });
  on("controlopen", () => {
    el.fileInput.disabled = false;
    sendMediaState();
  });
  on("controlclosed", () => {
    el.fileInput.disabled = true;
  });
  on("control", (event) => {
    const msg = event.detail;
    if (msg.type === "media-state") {
      showPeerState(msg);
    } else if (!files.handleControl(msg)) {
      console.warn("unknown control message from the peer:", msg.type);
    }
  });
  on("datachannel", (event) => {
    if (!files.handleChannel(event.detail)) {
      event.detail.close();
    }
  });
  on("chat", (event) => chat.add("Peer", event.detail.text, false));
  on("servererror", (event) => {
    const d = event.detail;
    if (d.code === "no-peer") {
      return; // a candidate that crossed the peer's departure: expected, harmless
    }
    showServerNote(`Server: ${d.message || d.code || "error"}`);
  });
  on("disconnected", () => {
    setStatus("Disconnected from the server");
    showEnded("The connection to the server was lost.");
  });

  setStatus(room === null ? "Creating a room…" : "Joining the room…");
  el.hangUp.disabled = false;
  self.start().catch((err) => {
    if (client !== self) {
      return;
    }
    if (err && err.name === "AuthError") {
      onAuthError(err, room);
      return;
    }
    console.error(err);
    setStatus("Could not reach the server");
    showEnded("Could not reach the signaling server. Check your connection and try again.");
  });
}

main();
