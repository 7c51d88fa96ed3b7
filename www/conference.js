/*
 * conference.js: the group-call page (conference.html), a grid of tiles over
 * mesh.js's MeshClient (one RTCPeerConnection per pair), which the SDK's Room
 * (sdk/rtcserver.js, docs/SDK.md) makes and enters the room with.
 *
 *   conference.html               create a room for up to ?size=N (default 8)
 *   conference.html?room=N        enter room N (a room of two goes to the call page)
 *   &name=NAME                    log in with NAME first, so tiles show it
 *
 * Links shared from here are the call page's (/?room=N): it sees that the room
 * holds more than two and comes here. For tests: window.mesh is the MeshClient.
 * Text from the network is only ever put in the page with textContent.
 *
 * A lost signaling socket is reconnected and resumed by the MeshClient, tiles and
 * media untouched; body[data-signaling] says "reconnecting" or "connected". Once
 * the room exists its number is in the address bar, so a refresh resumes into it.
 */
import { check } from "./browsersupport.js";
import { finalClose, parseRoom } from "./rtclib.js";
import { Room } from "./sdk/rtcserver.js";
import { $, Chat, getLocalMedia, isPressed, notice, playRemote, setPressed, show } from "./ui.js";

const params = new URLSearchParams(window.location.search);
const room = parseRoom(params.get("room"));
const size = Number.parseInt(params.get("size") || "8", 10);
const token = params.get("token") || null;
const tiles = $("tiles");
const template = $("tile-template");
const setStatus = (text) => {
  $("status-text").textContent = text;
};
const showMediaNotice = notice($("media-notice"));
const muteMic = $("mute-mic");
const cameraOff = $("camera-off");
const hangUp = $("hang-up");
const unmuteAll = $("unmute-all");
const SPEAKING_LEVEL = 0.04;

/** A tile for a member (or for us): its video, name and indicators. */
function addTile(key, label) {
  const figure = template.content.firstElementChild.cloneNode(true);
  figure.dataset.member = key;
  figure.querySelector(".tile-name").textContent = label;
  tiles.appendChild(figure);
  tiles.dataset.count = String(tiles.children.length);
  return figure;
}

function tileOf(key) {
  for (const tile of tiles.children) {
    if (tile.dataset.member === key) {
      return tile;
    }
  }
  return null;
}

function setIndicator(tile, name, on) {
  show(tile.querySelector(`.tile-${name}`), on);
  tile.classList.toggle(name, on);
}

function removeTile(key) {
  const tile = tileOf(key);
  if (tile) {
    tile.remove();
    tiles.dataset.count = String(tiles.children.length);
  }
}

/** This page's own address for room `number` (a refresh comes back to it). */
function pageUrl(number) {
  const url = new URL(window.location.href);
  url.searchParams.delete("size");
  url.searchParams.set("room", String(number));
  return url.href;
}

function shareUrl(number) {
  const url = new URL("/", window.location.href);
  url.searchParams.set("room", String(number));
  return url.href;
}

async function main() {
  const support = check();
  if (!support.ok) {
    setStatus(support.message || "This browser cannot make calls.");
    return;
  }
  const localMedia = getLocalMedia({
    video: true,
    say: showMediaNotice,
    without: "You can still watch and chat.",
  });
  let mesh = null;
  const options = {
    group: true, // this page's rooms are group rooms: a mesh at once
    capacity: Number.isSafeInteger(size) ? size : 8,
    media: localMedia, // the page's own, started in parallel
    token: token,
    name: params.get("name"),
    onClient: (client) => {
      mesh = client; // synchronously, and it starts once this code has its listeners on
    },
  };
  const entering = room === null ? Room.create(options) : Room.join(room, options);
  window.mesh = mesh;
  const own = addTile("self", "You");
  own.querySelector("video").muted = true;
  localMedia.then((stream) => {
    if (stream) {
      own.querySelector("video").srcObject = stream;
      muteMic.disabled = stream.getAudioTracks().length === 0;
      cameraOff.disabled = stream.getVideoTracks().length === 0;
    }
  });
  const chat = new Chat({
    log: $("chat-log"),
    form: $("chat-form"),
    input: $("chat-input"),
    button: $("chat-send"),
    send: (text) => mesh.sendChat(text),
  });

  const toggle = (button, kind) => {
    button.addEventListener("click", async () => {
      const stream = await localMedia;
      const off = !isPressed(button);
      setPressed(button, off);
      for (const track of kind === "audio" ? stream.getAudioTracks() : stream.getVideoTracks()) {
        track.enabled = !off;
      }
      setIndicator(own, kind === "audio" ? "muted" : "camera-off", off);
      mesh.setMediaState(!isPressed(muteMic), !isPressed(cameraOff));
    });
  };
  unmuteAll.addEventListener("click", () => {
    for (const video of tiles.querySelectorAll(".tile:not([data-member=self]) video")) {
      video.muted = false;
      video.play().catch(() => {});
    }
    show(unmuteAll, false);
  });
  toggle(muteMic, "audio");
  toggle(cameraOff, "video");
  hangUp.addEventListener("click", () => {
    mesh.hangUp();
    for (const tile of [...tiles.children]) {
      if (tile !== own) {
        tile.remove();
      }
    }
    tiles.dataset.count = "1";
    setStatus("You left the call.");
    hangUp.disabled = true;
    chat.enable(false);
  });

  const inCall = () => `Group call, up to ${mesh.capacity} people`;
  const showAway = () => {
    const unknown = mesh.awayUnknown;
    const notice = $("away-notice");
    notice.textContent =
      unknown === 1
        ? "Someone lost their connection. Waiting for them…"
        : `${unknown} people lost their connection. Waiting for them…`;
    show(notice, unknown > 0);
    document.body.dataset.away = String(unknown + [...mesh.peers.values()].filter((p) => p.away).length);
  };
  mesh.addEventListener("room", (event) => {
    const { room: number } = event.detail;
    // The room's number in the address bar at once: a refresh comes back to it.
    window.history.replaceState(null, "", pageUrl(number));
    document.body.dataset.signaling = "connected";
    setStatus(inCall());
    const link = $("share-link");
    link.href = shareUrl(number);
    link.textContent = link.href;
    show($("share"), true);
    hangUp.disabled = false;
    chat.enable(true);
  });
  $("copy-link").addEventListener("click", () => {
    navigator.clipboard.writeText($("share-link").href).then(
      () => {
        $("copy-result").textContent = "Copied";
      },
      () => {
        $("copy-result").textContent = "Copy the link by hand";
      },
    );
  });
  mesh.addEventListener("tworoom", (event) => {
    window.location.replace(shareUrl(event.detail.room)); // a room of two: the call page
  });
  mesh.addEventListener("wrongroom", (event) => {
    const reason = event.detail.reason;
    $("wrong-room-message").textContent =
      reason === "room-full" ? "This group call is full." : "This room link is not valid any more.";
    show($("wrong-room"), true);
    setStatus(reason === "room-full" ? "Room full" : "No such room");
    document.body.dataset.wrongroom = reason;
  });
  mesh.addEventListener("peerjoined", (event) => {
    const peer = event.detail.peer;
    const tile = addTile(peer.id, peer.name || "Guest");
    tile.querySelector("video").srcObject = peer.stream;
  });
  mesh.addEventListener("peerleft", (event) => {
    removeTile(event.detail.peer.id);
    showAway();
  });
  mesh.addEventListener("peerreset", (event) => {
    // The member reloaded its page: a new connection, the same tile.
    const { peer } = event.detail;
    const tile = tileOf(peer.id);
    if (tile) {
      tile.querySelector("video").srcObject = peer.stream;
      setIndicator(tile, "away", false);
    }
  });
  mesh.addEventListener("away", (event) => {
    const { peer } = event.detail;
    const tile = peer ? tileOf(peer.id) : null;
    if (tile) {
      setIndicator(tile, "away", peer.away);
    }
    showAway();
  });
  mesh.addEventListener("reconnecting", () => {
    document.body.dataset.signaling = "reconnecting";
    setStatus("Reconnecting…");
    chat.enable(false);
  });
  mesh.addEventListener("reconnected", () => {
    document.body.dataset.signaling = "connected";
    setStatus(inCall());
    chat.enable(true);
  });
  mesh.addEventListener("roomgone", () => {
    document.body.dataset.signaling = "gone";
    $("wrong-room-message").textContent = "This room is gone: the server restarted, or everyone left.";
    show($("wrong-room"), true);
    setStatus("The room is gone");
    hangUp.disabled = true;
    chat.enable(false);
  });
  mesh.addEventListener("peertrack", (event) => {
    const tile = tileOf(event.detail.peer.id);
    if (tile) {
      // Autoplay policy: silent rather than not at all, with a button to hear everyone.
      playRemote(tile.querySelector("video"), event.detail.peer.stream, unmuteAll);
    }
  });
  mesh.addEventListener("peermedia", (event) => {
    const { peer } = event.detail;
    const tile = tileOf(peer.id);
    if (tile) {
      setIndicator(tile, "muted", !peer.media.audio);
      setIndicator(tile, "camera-off", !peer.media.video);
    }
  });
  mesh.addEventListener("chat", (event) => {
    const { peer, text } = event.detail;
    chat.add(peer ? peer.name || "Guest" : "Someone", text, false);
  });
  mesh.addEventListener("servererror", (event) => {
    console.warn("server:", event.detail.code, event.detail.message);
  });
  mesh.addEventListener("disconnected", (event) => {
    document.body.dataset.signaling = "disconnected";
    setStatus(finalClose(event.detail) ? event.detail.reason : "Disconnected from the server.");
    chat.enable(false);
  });
  setInterval(() => updateSpeaking(mesh, own), SPEAKING_SAMPLE_MS);
  try {
    setStatus(room === null ? "Creating a group call…" : "Joining…");
    await entering;
  } catch (err) {
    if (err.name !== "RoomFullError" && err.name !== "NoSuchRoomError") {
      setStatus(err.message || String(err)); // (a refused room: "wrongroom" or "tworoom" above)
    }
  }
}

/**
 * The speaking indicator. Theirs: the audio level each packet carries (RTP header
 * extension, RFC 6464), read from the receiver, so it works before their sound is
 * played (autoplay). Ours: the microphone's level at the source, from getStats.
 * A level is one packet's (20 ms), so it is sampled often and held for
 * SPEAKING_HOLD_MS after the last loud sample: short sounds light the tile too, and a
 * pause between words does not make it flicker.
 */
const SPEAKING_SAMPLE_MS = 100;
const SPEAKING_HOLD_MS = 600;
const OWN_LEVEL_EVERY = 4; // getStats is dearer: our own level every 4th sample
const loudAt = new Map(); // member id (or "self") -> when it was last loud
let samples = 0;

function heardLoud(key, level, now) {
  if (level > SPEAKING_LEVEL) {
    loudAt.set(key, now);
  }
  return now - (loudAt.get(key) ?? Number.NEGATIVE_INFINITY) < SPEAKING_HOLD_MS;
}

async function updateSpeaking(mesh, own) {
  const now = performance.now();
  for (const peer of mesh.peers.values()) {
    const tile = tileOf(peer.id);
    if (!tile || !peer.pc) {
      continue;
    }
    let level = 0;
    for (const receiver of peer.pc.getReceivers()) {
      if (receiver.track?.kind === "audio" && receiver.getSynchronizationSources) {
        for (const source of receiver.getSynchronizationSources()) {
          level = Math.max(level, source.audioLevel || 0);
        }
      }
    }
    setIndicator(tile, "speaking", heardLoud(peer.id, level, now) && peer.media.audio);
  }
  for (const key of loudAt.keys()) {
    if (key !== "self" && !mesh.peers.has(key)) {
      loudAt.delete(key);
    }
  }
  samples += 1;
  const first = mesh.peers.values().next().value;
  if (first?.pc && samples % OWN_LEVEL_EVERY === 0) {
    let level = 0;
    (await first.pc.getStats()).forEach((report) => {
      if (report.type === "media-source" && report.kind === "audio") {
        level = Math.max(level, report.audioLevel || 0);
      }
    });
    const loud = heardLoud("self", level, performance.now());
    setIndicator(own, "speaking", loud && !isPressed(muteMic));
  }
}

main();
