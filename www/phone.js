/*
 * phone.js: the soft phone (phone.html). All protocol work is in phonelib.js
 * (PhoneClient); this file turns its events into the login form, the list of
 * people, the ringing and in-call screens, the chat, files (filetransfer.js,
 * transferlist.js), the peer's mute and camera state, and the call timer and
 * connection quality (callquality.js).
 *
 *   phone.html            log in with a name (and a password when the server
 *                         asks for one), then call people or be called
 *   phone.html?token=T    a server in token mode: T goes on the WebSocket URL,
 *                         and the name field starts with the token's name
 *   &relay=1              force iceTransportPolicy "relay" (testing TURN)
 *
 * For tests and debugging:
 * A reload (or a closed tab: the page cannot tell them apart) keeps the session:
 * the next page of this tab comes back under the same name and an accepted call
 * goes on (PhoneClient.leavePage and resume). Log out and the Video rooms link
 * end it at once (close 1000).
 *
 *   window.phone       the PhoneClient: .name, .users (Map), .call (null or
 *                      {id, peer, media, direction, state, room}), .pc (the
 *                      call's RTCPeerConnection or null), .dc (its
 *                      RTCDataChannel or null), .controlChannel (the
 *                      "control" RTCDataChannel or null), .localStream
 *   window.phoneRing   the ring tone: .playing is true while it rings
 *   window.phoneMedia  the OutgoingMedia (outgoing.js): what a call sends now
 *   window.phoneFiles  the FileTransfers (filetransfer.js) of the calls
 *
 * Text from the network (names, chat) is only ever put in the page with
 * textContent.
 */
import { check } from "./browsersupport.js";
import { CallInfo } from "./callquality.js";
import { FileTransfers } from "./filetransfer.js";
import { OutgoingMedia } from "./outgoing.js";
import { PhoneClient } from "./phonelib.js";
import { configUrl, finalClose, loadServerConfig, tokenName } from "./rtclib.js";
import { wireSendControls } from "./sendcontrols.js";
import { showTransfers } from "./transferlist.js";
import {
  $,
  Chat,
  getLocalMedia,
  notice,
  peerStateView,
  playRemote,
  setPressed,
  show,
  unmuteOnClick,
  wireViewer,
} from "./ui.js";

const el = {
  statusText: $("status-text"),
  me: $("me"),
  meName: $("me-name"),
  logout: $("logout"),
  roomsLink: $("rooms-link"),
  login: $("login"),
  loginForm: $("login-form"),
  loginName: $("login-name"),
  loginPasswordField: $("login-password-field"),
  loginPassword: $("login-password"),
  loginSubmit: $("login-submit"),
  loginError: $("login-error"),
  lost: $("lost"),
  lostMessage: $("lost-message"),
  reconnect: $("reconnect"),
  note: $("note"),
  mediaNotice: $("media-notice"),
  incoming: $("incoming"),
  incomingFrom: $("incoming-from"),
  incomingMedia: $("incoming-media"),
  accept: $("accept"),
  reject: $("reject"),
  outgoing: $("outgoing"),
  outgoingText: $("outgoing-text"),
  cancelCall: $("cancel-call"),
  directory: $("directory"),
  users: $("users"),
  noUsers: $("no-users"),
  userFilter: $("user-filter"),
  moreUsers: $("more-users"),
  inCall: $("in-call"),
  videos: $("videos"),
  remoteVideo: $("remoteVideo"),
  localVideo: $("localVideo"),
  remoteAudio: $("remoteAudio"),
  callTitle: $("call-title"),
  callTimer: $("call-timer"),
  quality: $("quality"),
  peerMuted: $("peer-muted"),
  peerCameraOff: $("peer-camera-off"),
  peerSharing: $("peer-sharing"),
  fileInput: $("file-input"),
  transfers: $("transfers"),
  remoteFigure: $("remote-figure"),
  localCaption: $("local-caption"),
  fileVideo: $("fileVideo"),
  muteMic: $("mute-mic"),
  cameraOff: $("camera-off"),
  shareScreen: $("share-screen"),
  sendVideo: $("send-video"),
  videoFile: $("video-file"),
  fullscreen: $("fullscreen"),
  pip: $("pip"),
  cameraSelect: $("camera-select"),
  micSelect: $("mic-select"),
  devices: $("devices"),
  unmuteRemote: $("unmute-remote"),
  hangUp: $("hang-up"),
  chatLog: $("chat-log"),
  chatForm: $("chat-form"),
  chatInput: $("chat-input"),
  chatSend: $("chat-send"),
};

const params = new URLSearchParams(window.location.search);
const token = params.get("token") || null;
const MEDIA_WORDS = { video: "video", audio: "voice", data: "text" };

function setStatus(text) {
  el.statusText.textContent = text;
}

const showNote = notice(el.note);

// ------------------------------------------------------------- ring tone

/**
 * The ring of an incoming call, from a Web Audio oscillator pair (440 +
 * 480 Hz, 2 s on, 4 s off, like a North American ring). A browser may keep
 * the AudioContext suspended until the person has touched the page; the
 * visual ringing still shows, and `playing` tells whether it should sound.
 */
class RingTone {
  constructor() {
    this.playing = false;
    this._context = null;
    this._timer = null;
    this._nodes = [];
  }

  start() {
    if (this.playing) {
      return;
    }
    const AudioContext = window.AudioContext || window.webkitAudioContext;
    if (!AudioContext) {
      return;
    }
    this.playing = true;
    this._context = this._context || new AudioContext();
    this._context.resume().catch(() => {});
    this._burst();
    this._timer = setInterval(() => {
      this._burst();
    }, 6000);
  }

  stop() {
    if (!this.playing) {
      return;
    }
    this.playing = false;
    clearInterval(this._timer);
    this._timer = null;
    this._nodes.forEach((node) => {
      try {
        node.stop();
      } catch (_err) {
        // already stopped
      }
    });
    this._nodes = [];
  }

  _burst() {
    const ctx = this._context;
    const gain = ctx.createGain();
    const t = ctx.currentTime;
    gain.gain.setValueAtTime(0, t);
    gain.gain.linearRampToValueAtTime(0.08, t + 0.05);
    gain.gain.setValueAtTime(0.08, t + 1.95);
    gain.gain.linearRampToValueAtTime(0, t + 2);
    gain.connect(ctx.destination);
    this._nodes = [440, 480].map((freq) => {
      const osc = ctx.createOscillator();
      osc.frequency.value = freq;
      osc.connect(gain);
      osc.start(t);
      osc.stop(t + 2);
      osc.onended = () => {
        osc.disconnect();
        this._nodes = this._nodes.filter((n) => n !== osc);
      };
      return osc;
    });
  }
}

const ring = new RingTone();
window.phoneRing = ring;

// ----------------------------------------------------------- local media

const showMediaNotice = notice(el.mediaNotice);

/**
 * The camera and microphone for a video call (the microphone alone if no
 * camera works), only the microphone for a voice call. Never rejects: a
 * call without local media still receives the peer.
 */
function localMediaFor(media) {
  showMediaNotice("");
  return getLocalMedia({
    video: media === "video",
    say: showMediaNotice,
    without: "You can still see, hear and text your peer.",
  });
}

// ---------------------------------------------------------------- client

const client = new PhoneClient({
  token: token,
  forceRelay: params.get("relay") === "1",
  getLocalMedia: localMediaFor,
});
window.phone = client;
// Leaving the page (a refresh, or a closed tab: the page cannot tell which) keeps the
// session for the next page of this tab: the browser closes the socket with 1001, and
// the server holds the name and the call for the grace (docs/PROTOCOL.md, "Sessions and
// resume"). Log out, or the link to the room page, ends it at once.
window.addEventListener("pagehide", () => client.leavePage());

let lastLogin = null; // {name, password}: what Reconnect logs in with again
let authMode = null;

// ------------------------------------------------------------------ login

const LOGIN_TEXT = {
  taken: "That name is taken: someone online is using it. Choose another.",
  invalid: "That name is not allowed",
  auth: "Your sign-in is for another name.",
  "auth-failed": "Wrong name or password.",
  "auth-throttled": "Too many failed logins. Wait a minute, then try again.",
  "token-missing": "This server needs a personal link with a sign-in token (?token=…) in it.",
};

function showLoginError(text) {
  el.loginError.textContent = text;
  show(el.loginError, !!text);
}

function loginMessage(err) {
  if (err && err.name === "LoginError") {
    if (err.kind === "invalid") {
      // "invalid name: U+200D is not allowed": the server names code points, never raw characters.
      return `${LOGIN_TEXT.invalid} (${err.reason.replace(/^invalid name:\s*/, "")}).`;
    }
    return LOGIN_TEXT[err.kind] || `Login refused: ${err.reason}`;
  }
  if (err && err.name === "AuthError") {
    return LOGIN_TEXT[err.code] || err.message;
  }
  return "Could not reach the server. Check your connection and try again.";
}

function logIn(name, password) {
  el.loginSubmit.disabled = true;
  showLoginError("");
  setStatus("Logging in…");
  return client.login(name, password).then(
    (myName) => {
      lastLogin = { name: name, password: password };
      el.loginSubmit.disabled = false;
      el.loginPassword.value = "";
      showLoggedIn(myName);
    },
    (err) => {
      el.loginSubmit.disabled = false;
      setStatus("Not logged in");
      show(el.lost, false);
      show(el.login, true);
      showLoginError(loginMessage(err));
    },
  );
}

function showLoggedIn(myName) {
  show(el.login, false);
  show(el.lost, false);
  el.meName.textContent = myName;
  show(el.me, true);
  show(el.logout, true);
  show(el.directory, !client.call);
  setStatus(client.call ? "Connecting…" : "Online");
  renderUsers(client.userList());
}

function showLoginForm() {
  show(el.me, false);
  show(el.logout, false);
  show(el.directory, false);
  setStatus("Not logged in");
  show(el.login, true);
  el.loginName.focus();
}

el.logout.addEventListener("click", () => {
  client.logout(); // ends a call too ("ended", reason "local")
  showLoginForm();
});

// The room page is another page: going there is leaving, not a reload.
el.roomsLink.addEventListener("click", () => {
  client.logout();
});

el.loginForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = el.loginName.value.trim();
  if (name) {
    logIn(name, el.loginPassword.value);
  }
});

el.reconnect.addEventListener("click", () => {
  if (lastLogin) {
    el.reconnect.disabled = true;
    logIn(lastLogin.name, lastLogin.password).then(() => {
      el.reconnect.disabled = false;
    });
  }
});

// -------------------------------------------------------------- directory

// The server sends every name (docs/PROTOCOL.md, "Directory"); with thousands online
// the page lists the first SHOWN_USERS that match the search box, and says how many more.
const SHOWN_USERS = 200;

function renderUsers(all) {
  const inCall = client.call !== null;
  const wanted = el.userFilter.value.trim().toLowerCase();
  const matching = wanted ? all.filter((u) => u.name.toLowerCase().includes(wanted)) : all;
  const users = matching.slice(0, SHOWN_USERS);
  const more = matching.length - users.length;
  el.moreUsers.textContent = more > 0 ? `${more} more: type part of a name to find them.` : "";
  show(el.moreUsers, more > 0);
  show(el.userFilter, all.length > SHOWN_USERS || wanted !== "");
  el.users.textContent = "";
  users.forEach((user) => {
    const item = document.createElement("li");
    item.dataset.name = user.name;
    item.className = user.status === "in-call" ? "busy" : "available";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = user.name;
    const status = document.createElement("span");
    status.className = "presence";
    status.textContent = user.status === "in-call" ? "busy" : "available";
    item.appendChild(name);
    item.appendChild(status);
    [
      ["video", "Call", "call-video"],
      ["audio", "Voice", "call-audio"],
      ["data", "Text", "call-data"],
    ].forEach((b) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = b[2];
      button.textContent = b[1];
      // Busy people can still be tried: the server answers BUSY, which the page explains.
      button.disabled = inCall;
      button.setAttribute("aria-label", `${b[1]} ${user.name}`);
      button.addEventListener("click", () => {
        startCall(user.name, b[0]);
      });
      item.appendChild(button);
    });
    el.users.appendChild(item);
  });
  show(el.noUsers, all.length === 0);
}

el.userFilter.addEventListener("input", () => {
  renderUsers(client.userList());
});

client.addEventListener("users", (event) => {
  renderUsers(event.detail);
});

// ------------------------------------------------------------------ calls

function startCall(name, media) {
  if (!client.placeCall(name, media)) {
    return;
  }
  showNote("");
  el.outgoingText.textContent = `Calling ${name} (${MEDIA_WORDS[media]})…`;
  show(el.outgoing, true);
  setStatus("Calling");
  renderUsers(client.userList());
}

client.addEventListener("ringing", (event) => {
  el.outgoingText.textContent = `Ringing ${event.detail.to}…`;
});

client.addEventListener("incoming", (event) => {
  const d = event.detail;
  showNote("");
  el.incomingFrom.textContent = d.from;
  el.incomingMedia.textContent = `${MEDIA_WORDS[d.media]} call`;
  show(el.incoming, true);
  // A dialog takes the focus: Enter or Space accepts, Esc rejects.
  el.accept.focus();
  setStatus("Incoming call");
  ring.start();
  renderUsers(client.userList());
});

el.accept.addEventListener("click", () => {
  ring.stop();
  show(el.incoming, false);
  setStatus("Connecting…");
  client.accept();
});

function rejectIncoming() {
  const peer = client.call ? client.call.peer : "";
  ring.stop();
  client.reject();
  showNote(`You rejected the call from ${peer}.`);
}

el.reject.addEventListener("click", rejectIncoming);

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !el.incoming.hidden) {
    event.preventDefault();
    rejectIncoming();
  }
});

el.cancelCall.addEventListener("click", () => {
  client.hangUp();
});

el.hangUp.addEventListener("click", () => {
  client.hangUp();
});

client.addEventListener("accepted", (event) => {
  const d = event.detail;
  ring.stop();
  show(el.incoming, false);
  show(el.outgoing, false);
  show(el.directory, false);
  el.callTitle.textContent = (d.media === "data" ? "Texting " : "In a call with ") + d.peer;
  // Video calls show video; a voice call plays through <audio>; a text call has only the chat.
  show(el.videos, d.media === "video");
  for (const control of [el.cameraOff, el.shareScreen, el.sendVideo, el.fullscreen, el.pip]) {
    show(control, d.media === "video");
  }
  show(el.muteMic, d.media !== "data");
  show(el.devices, d.media !== "data");
  setPressed(el.muteMic, false);
  setPressed(el.cameraOff, false);
  sent.setMicrophoneOn(true);
  sent.setCameraOn(true);
  showPeerState(null);
  el.fileInput.disabled = true;
  chat.clear();
  chat.enable(false);
  show(el.inCall, true);
  setStatus("Connecting…");
});

client.addEventListener("localstream", (event) => {
  sent.setCamera(event.detail);
  sendControls.enable(event.detail);
  if (client.call?.media !== "video") {
    el.shareScreen.disabled = el.sendVideo.disabled = true;
  }
});

client.addEventListener("call", (event) => {
  sent.setCall(event.detail.pc);
  files.setCall(event.detail.pc);
});

client.addEventListener("remotestream", (event) => {
  const media = client.call ? client.call.media : "video";
  playRemote(media === "video" ? el.remoteVideo : el.remoteAudio, event.detail, el.unmuteRemote);
  viewer.enable(media === "video");
});

const viewer = wireViewer({
  figure: el.remoteFigure,
  video: el.remoteVideo,
  fullscreen: el.fullscreen,
  pip: el.pip,
  say: showNote,
});

unmuteOnClick(el.unmuteRemote, [el.remoteVideo, el.remoteAudio]);

const CALL_STATE_TEXT = {
  connecting: "Connecting…",
  connected: "In a call",
  disconnected: "Connection interrupted, trying to recover…",
  failed: "The call's connection failed. Hang up and try again.",
};

client.addEventListener("callstate", (event) => {
  const state = event.detail;
  const text = CALL_STATE_TEXT[state];
  if (text) {
    setStatus(text);
  }
  if (state === "connected" && !callInfo.running && client.pc) {
    callInfo.start(client.pc);
  } else if (state === "closed" || state === "failed") {
    callInfo.stop();
  }
});

function endedText(d) {
  const who = d.peer;
  switch (d.reason) {
    case "rejected":
      return `${who} rejected the call.`;
    case "busy":
      return `${who} is busy in another call. Try again later.`;
    case "noanswer":
      return `No answer from ${who}.`;
    case "cancelled":
      return `Missed call from ${who}.`;
    case "hangup":
      return `${who} hung up.`;
    case "local":
      return `Call with ${who} ended.`;
    case "disconnected":
      return `The call with ${who} ended: the connection to the server was lost.`;
    case "error":
      if (d.code === "unknown-user") {
        return `${who} is not online any more.`;
      }
      return `The call failed: ${d.message || d.code}.`;
    default:
      return "The call ended.";
  }
}

client.addEventListener("ended", (event) => {
  const d = event.detail;
  ring.stop();
  show(el.incoming, false);
  show(el.outgoing, false);
  show(el.inCall, false);
  show(el.unmuteRemote, false);
  el.remoteVideo.srcObject = null;
  el.remoteAudio.srcObject = null;
  // PhoneClient stops the camera and microphone; a shared screen or video file stops here.
  sent.stop();
  sent.setCall(null);
  sent.setCamera(null);
  sendControls.disable();
  viewer.enable(false);
  callInfo.stop();
  files.setCall(null);
  el.fileInput.disabled = true;
  showPeerState(null);
  chat.enable(false);
  showNote(endedText(d)); // after Reject, the click handler then says it in its own words
  if (client.connected) {
    show(el.directory, true);
    setStatus("Online");
    renderUsers(client.userList());
  }
});

client.addEventListener("servererror", (event) => {
  const d = event.detail;
  showNote(`Server: ${d.message || d.code}`);
});

client.addEventListener("reconnecting", () => {
  setStatus("Reconnecting…");
  document.body.dataset.signaling = "reconnecting";
});

client.addEventListener("reconnected", () => {
  setStatus(client.call ? "In a call" : "Online");
  document.body.dataset.signaling = "connected";
});

client.addEventListener("peeraway", (event) => {
  setStatus(`${event.detail.peer}'s connection was lost: waiting for them to come back…`);
  document.body.dataset.peer = "away";
});

client.addEventListener("peerback", () => {
  setStatus(CALL_STATE_TEXT[client.pc ? client.pc.connectionState : "connecting"] || "In a call");
  document.body.dataset.peer = "back";
});

client.addEventListener("disconnected", (event) => {
  ring.stop();
  show(el.directory, false);
  show(el.me, false);
  show(el.logout, false);
  setStatus("Disconnected");
  // The operator's own words when it ended the connection ("Signed out by the server").
  const final = finalClose(event.detail);
  el.lostMessage.textContent = final ? event.detail.reason : "The connection to the server was lost.";
  show(el.lost, true);
  el.reconnect.disabled = false;
});

// ----------------------------------------------------------- in-call controls

// What this side sends (the call's camera and microphone, a screen or a video
// file), switched without renegotiation: outgoing.js, sendcontrols.js.
const sent = new OutgoingMedia();
window.phoneMedia = sent;
const sendControls = wireSendControls({ outgoing: sent, el, say: showMediaNotice, onChange: sendMediaState });

/** Tell the peer what we send (docs/PROTOCOL.md, "Between the peers"); a text call sends nothing. */
function sendMediaState() {
  const media = client.call?.media;
  if (media === "video" || media === "audio") {
    client.sendControl({
      type: "media-state",
      audio: sent.audioOn,
      video: sent.videoOn,
      source: sent.source,
    });
  }
}

// The peer's mute / camera-off / sharing indicators (ui.js, shared with the room page).
const showPeerState = peerStateView({
  muted: el.peerMuted,
  cameraOff: el.peerCameraOff,
  sharing: el.peerSharing,
});

function onPeerMediaState(msg) {
  const media = client.call?.media;
  if (media === "video") {
    showPeerState(msg);
  } else if (media === "audio") {
    showPeerState({ audio: msg.audio }); // a voice call has no picture to speak of
  }
}

// --------------------------------------------------------- call info

const callInfo = new CallInfo({ timer: el.callTimer, quality: el.quality });

// ------------------------------------------------------------------ files

const files = new FileTransfers((msg) => client.sendControl(msg));
window.phoneFiles = files;

showTransfers({ files, input: el.fileInput, dropZone: el.inCall, list: el.transfers });

client.addEventListener("controlopen", () => {
  el.fileInput.disabled = false;
  sendMediaState();
});

client.addEventListener("controlclosed", () => {
  el.fileInput.disabled = true;
});

client.addEventListener("control", (event) => {
  const msg = event.detail;
  if (msg.type === "media-state") {
    onPeerMediaState(msg);
  } else if (!files.handleControl(msg)) {
    console.warn("unknown control message from the peer:", msg.type);
  }
});

client.addEventListener("datachannel", (event) => {
  if (!files.handleChannel(event.detail)) {
    event.detail.close();
  }
});

// ------------------------------------------------------------------- chat

const chat = new Chat({
  log: el.chatLog,
  form: el.chatForm,
  input: el.chatInput,
  button: el.chatSend,
  send: (text) => client.sendText(text),
});

client.addEventListener("textopen", () => {
  chat.enable(true);
  if (client.call && client.call.media === "data") {
    setStatus("Texting");
  }
});

client.addEventListener("textclosed", () => {
  chat.enable(false);
});

client.addEventListener("text", (event) => {
  chat.add(client.call ? client.call.peer : "Peer", event.detail.text, false);
});

// ------------------------------------------------------------------ start

function main() {
  const support = check();
  if (!support.ok) {
    setStatus(support.message);
    return;
  }
  loadServerConfig(configUrl()).then((config) => {
    authMode = config.auth === "token" || config.auth === "password" ? config.auth : null;
    show(el.loginPasswordField, authMode === "password");
    el.loginPassword.required = authMode === "password";
    if (authMode === "token") {
      if (!token) {
        showLoginError(LOGIN_TEXT["token-missing"]);
        el.loginSubmit.disabled = true;
      } else {
        el.loginName.value = tokenName(token) || "";
      }
    }
    // A reload within the grace: the same name (and call) without asking again.
    return client.resume().then((myName) => {
      if (myName) {
        lastLogin = { name: myName, password: null };
        showLoggedIn(myName);
      } else {
        showLoginForm();
      }
    });
  });
}

main();
