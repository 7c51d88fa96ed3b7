/*
 * app.js: the video-call page (index.html). It enters its room through the SDK
 * (sdk/rtcserver.js, docs/SDK.md), and wires the room's client underneath
 * (roomclient.js: the protocol) to the page; the shared page parts are in ui.js; what we send (camera, screen, a video file)
 * in outgoing.js; files in filetransfer.js. This module wires them to the page.
 *
 *   /            create a room, show its link, wait for a peer
 *   /?room=N     enter room N and call the peer in it (a group room: conference.html)
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
import { CallInfo } from "./callquality.js";
import { FileTransfers } from "./filetransfer.js";
import { OutgoingMedia } from "./outgoing.js";
import { wireSendControls } from "./sendcontrols.js";
import { showTransfers } from "./transferlist.js";
import { finalClose, parseRoom } from "./rtclib.js";
import { Room } from "./sdk/rtcserver.js";
import {
  $,
  Chat,
  getLocalMedia,
  notice,
  peerStateView,
  playRemote,
  show,
  unmuteOnClick,
  wireViewer,
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
  sendControls.enable(stream);
  return stream;
}

const sendControls = wireSendControls({ outgoing, el, say: showMediaNotice, onChange: sendMediaState });

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

function stopLocalMedia() {
  pageDone = true;
  outgoing.stop();
  sendControls.disable();
}

// ----------------------------------------------------------- remote media

function showRemote(stream) {
  el.remoteCaption.textContent = "Peer";
  playRemote(el.remoteVideo, stream, el.unmuteRemote);
  viewer.enable(true);
}

unmuteOnClick(el.unmuteRemote, [el.remoteVideo]);

function clearRemote(caption) {
  el.remoteVideo.srcObject = null;
  el.remoteCaption.textContent = caption;
  show(el.unmuteRemote, false);
  showPeerState(null);
  viewer.enable(false);
}

const viewer = wireViewer({
  figure: el.remoteFigure,
  video: el.remoteVideo,
  fullscreen: el.fullscreen,
  pip: el.pip,
  say: showServerNote,
});

/** The peer's mute, camera and sharing state (a media-state message), or null for none. */
const showPeerState = peerStateView({
  muted: el.peerMuted,
  cameraOff: el.peerCameraOff,
  sharing: el.peerSharing,
});

// --------------------------------------------------------- call info

const callInfo = new CallInfo({ timer: el.callTimer, quality: el.quality });

// ----------------------------------------------------------------- files

showTransfers({
  files,
  input: el.fileInput,
  dropZone: document.querySelector("main.call"),
  list: el.transfers,
});

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
  callInfo.stop();
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
    // The room lives on only while someone else is in it: Rejoin only then.
    const roomLivesOn = client.peerPresent;
    client.hangUp();
    setStatus("You left the call");
    showEnded("You left the call.", roomLivesOn);
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
  if (room === null) {
    // A new room: with rooms for more than two by default, the group page makes it.
    newRoomCapacity().then((capacity) => {
      if (capacity > 2) {
        openGroupPage(capacity);
        return;
      }
      localMedia = startLocalMedia();
      connect(null);
    });
    return;
  }
  localMedia = startLocalMedia();
  connect(room);
}

/** The capacity a new room gets (config.json "roomCapacity", --room-capacity); 2 if unknown. */
async function newRoomCapacity() {
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    const body = await response.json();
    return Number.isSafeInteger(body.roomCapacity) ? body.roomCapacity : 2;
  } catch (_err) {
    return 2;
  }
}

/** Rooms of more than two are group calls: their creator must see everyone (conference.html). */
function openGroupPage(capacity) {
  const url = new URL("conference.html", window.location.href);
  url.searchParams.set("size", String(capacity));
  if (token) {
    url.searchParams.set("token", token);
  }
  window.location.replace(url.href);
}

/** Enter `room` (null: a new one) through the SDK. Called again after a refused password. */
function connect(room) {
  setStatus(room === null ? "Creating a room…" : "Joining the room…");
  el.hangUp.disabled = false;
  let mine = null; // the RoomClient the SDK makes for this entry
  const options = {
    media: localMedia, // started by the page, in parallel: the SDK leaves it to the page
    forceRelay,
    token,
    credentials: askForPassword,
    groupRooms: false, // a group room is conference.html's ("conference" below)
    onClient: (self) => {
      mine = self;
      wire(self, room);
    },
  };
  const entering = room === null ? Room.create(options) : Room.join(room, options);
  entering.catch((err) => {
    if (client !== mine) {
      return; // a retry replaced it
    }
    if (err.name === "AuthError") {
      onAuthError(err, room);
    } else if (err.name !== "RoomFullError" && err.name !== "NoSuchRoomError") {
      // (a refused room: the "wrongroom" or "conference" handler has shown it)
      console.error(err);
      setStatus("Could not reach the server");
      showEnded("Could not reach the signaling server. Check your connection and try again.");
    }
  });
}

/** Wire `self` (a RoomClient the SDK made for `room`) to the page, before it starts. */
function wire(self, room) {
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
    // The room's number in the address bar at once: a refresh comes back to it.
    window.history.replaceState(null, "", pageUrl(event.detail.room, true));
    if (room === null) {
      // A joiner's link is shown once the room has taken it ("calling"),
      // so a wrong room never flashes a link.
      showShareLink(event.detail.room);
      setStatus("Waiting for someone to join. Share this link:");
    }
  });
  on("wrongroom", (event) => showWrongRoom(event.detail.reason));
  on("waitingforseat", () => setStatus("Waiting for a seat…"));
  on("conference", (event) => {
    // A group call: the grid page takes the same room (and the sign-in token, if any).
    const url = new URL("conference.html", window.location.href);
    url.searchParams.set("room", String(event.detail.room));
    if (token) {
      url.searchParams.set("token", token);
    }
    window.location.replace(url.href);
  });
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
    callInfo.stop();
    files.setCall(null);
  });
  on("remotestream", (event) => showRemote(event.detail));
  on("callstate", (event) => {
    const state = event.detail;
    if (CALL_STATUS[state]) {
      setStatus(CALL_STATUS[state]);
    }
    if (state === "connected" && !callInfo.running && self.pc) {
      callInfo.start(self.pc);
    } else if (state === "closed" || state === "failed") {
      callInfo.stop();
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
  on("reconnecting", () => {
    setStatus("Reconnecting…");
    document.body.dataset.signaling = "reconnecting";
  });
  on("reconnected", () => {
    document.body.dataset.signaling = "connected";
    const state = self.pc ? self.pc.connectionState : null;
    setStatus(state && CALL_STATUS[state] ? CALL_STATUS[state] : "Connected");
  });
  on("peeraway", () => setStatus("Your peer lost its connection to the server. Waiting for it…"));
  on("peerback", () => {
    const state = self.pc ? self.pc.connectionState : null;
    setStatus(state && CALL_STATUS[state] ? CALL_STATUS[state] : "Your peer is back");
  });
  on("roomgone", () => {
    setStatus("The room is gone");
    showEnded("This room is gone: the server restarted, or everyone left. Start a new room.", false);
  });
  on("disconnected", (event) => {
    setStatus("Disconnected from the server");
    // The operator's own words when it ended the connection ("The room was closed").
    const d = event.detail;
    showEnded(finalClose(d) ? d.reason : "The connection to the server was lost.", false);
  });
}

main();
