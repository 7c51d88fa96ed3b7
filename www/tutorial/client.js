// The client of the classic "WebRTC tutorial" (a video call by user name, with a text
// chat over a data channel), written from the dialect's description: it speaks only
// `login`, `offer`, `answer`, `candidate` and `leave` to the server the originals use.
// Served by rtcserver (`--port 9090`), it works unchanged: docs/PROTOCOL.md,
// "The tutorial dialect".

const SERVER = "ws://localhost:9090";
// The tutorials put a public STUN server here; on one machine or a LAN none is needed.
const CONFIGURATION = { iceServers: [] };

const $ = (id) => document.getElementById(id);
const loginPage = $("loginPage");
const callPage = $("callPage");
const usernameInput = $("usernameInput");
const callToUsernameInput = $("callToUsernameInput");
const localVideo = $("localVideo");
const remoteVideo = $("remoteVideo");
const hangUpBtn = $("hangUpBtn");
const callBtn = $("callBtn");
const msgInput = $("msgInput");
const sendMsgBtn = $("sendMsgBtn");

// What the tutorials keep in globals: our name, who we talk to, the connection.
const state = { name: null, connectedUser: null, pc: null, channel: null, stream: null };
window.tutorial = state; // read by the browser tests

const conn = new WebSocket(SERVER);
conn.onopen = () => console.log("Connected to the signaling server");
conn.onclose = () => setStatus("Disconnected from the signaling server");
// One message at a time, in order: a candidate must wait for the offer before it.
let handling = Promise.resolve();
conn.onmessage = (msg) => {
  let data;
  try {
    data = JSON.parse(msg.data);
  } catch {
    return;
  }
  handling = handling.then(() => handle(data)).catch((error) => console.warn("signaling:", error));
};

async function handle(data) {
  switch (data.type) {
    case "login":
      return handleLogin(data.success);
    case "offer":
      return handleOffer(data.offer, data.name);
    case "answer":
      return handleAnswer(data.answer);
    case "candidate":
      return handleCandidate(data.candidate);
    case "leave":
      return handleLeave(`${state.connectedUser ?? "Your peer"} left`);
    case "error":
      return setStatus(data.message);
    default:
      return undefined;
  }
}

function send(message) {
  // As in the tutorials: every message names the other user.
  if (state.connectedUser) {
    message.name = state.connectedUser;
  }
  conn.send(JSON.stringify(message));
}

function setStatus(text) {
  $("callStatus").textContent = text;
}

// ------------------------------------------------------------------ login

$("loginBtn").addEventListener("click", () => {
  const name = usernameInput.value.trim();
  if (name.length > 0) {
    state.name = name;
    conn.send(JSON.stringify({ type: "login", name }));
  }
});

async function handleLogin(success) {
  if (!success) {
    state.name = null;
    $("loginError").textContent = "Ooops... try a different username";
    return;
  }
  loginPage.hidden = true;
  callPage.hidden = false;
  $("myName").textContent = state.name;
  state.stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  localVideo.srcObject = state.stream;
}

// ------------------------------------------------------------------ the call

function makeConnection() {
  const pc = new RTCPeerConnection(CONFIGURATION);
  for (const track of state.stream.getTracks()) {
    pc.addTrack(track, state.stream);
  }
  pc.ontrack = (event) => {
    remoteVideo.srcObject = event.streams[0];
  };
  pc.onicecandidate = (event) => {
    if (event.candidate) {
      send({ type: "candidate", candidate: event.candidate });
    }
  };
  pc.ondatachannel = (event) => openChannel(event.channel);
  state.pc = pc;
  hangUpBtn.disabled = false;
  callBtn.disabled = true;
  return pc;
}

callBtn.addEventListener("click", async () => {
  const callee = callToUsernameInput.value.trim();
  if (callee.length === 0 || !state.stream) {
    return;
  }
  state.connectedUser = callee;
  const pc = makeConnection();
  openChannel(pc.createDataChannel("chat"));
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  send({ type: "offer", offer });
  setStatus(`Calling ${callee}…`);
});

async function handleOffer(offer, name) {
  state.connectedUser = name;
  const pc = makeConnection();
  await pc.setRemoteDescription(new RTCSessionDescription(offer));
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  send({ type: "answer", answer });
  setStatus(`In a call with ${name}`);
}

async function handleAnswer(answer) {
  await state.pc?.setRemoteDescription(new RTCSessionDescription(answer));
  setStatus(`In a call with ${state.connectedUser}`);
}

async function handleCandidate(candidate) {
  await state.pc?.addIceCandidate(new RTCIceCandidate(candidate));
}

hangUpBtn.addEventListener("click", () => {
  send({ type: "leave" });
  handleLeave("You hung up");
});

function handleLeave(why) {
  state.connectedUser = null;
  remoteVideo.srcObject = null;
  state.channel?.close();
  state.channel = null;
  state.pc?.close();
  state.pc = null;
  hangUpBtn.disabled = true;
  callBtn.disabled = false;
  msgInput.disabled = sendMsgBtn.disabled = true;
  setStatus(why);
}

// ------------------------------------------------------------------ text chat

function openChannel(channel) {
  state.channel = channel;
  channel.onopen = () => {
    msgInput.disabled = sendMsgBtn.disabled = false;
  };
  channel.onclose = () => {
    msgInput.disabled = sendMsgBtn.disabled = true;
  };
  channel.onmessage = (event) => addChat(`${state.connectedUser}: ${event.data}`, "theirs");
}

function addChat(text, who) {
  const item = document.createElement("li");
  item.className = who;
  item.textContent = text; // network text: never innerHTML
  $("chatArea").append(item);
}

function sendChat() {
  const text = msgInput.value;
  if (text.length === 0 || state.channel?.readyState !== "open") {
    return;
  }
  state.channel.send(text);
  addChat(`${state.name}: ${text}`, "mine");
  msgInput.value = "";
}

sendMsgBtn.addEventListener("click", sendChat);
msgInput.addEventListener("keydown", (event) => {
  if (event.key === "Enter") {
    sendChat();
  }
});
