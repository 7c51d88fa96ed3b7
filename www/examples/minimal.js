// The page of docs/SDK.md: a video call with everyone who opens its link.
import { Room } from "../sdk/rtcserver.js";

const $ = (id) => document.getElementById(id);
const videos = new Map(); // "me" or a peer's id -> its <video>
function play(id, stream) {
  const video = videos.get(id) || $("videos").appendChild(document.createElement("video"));
  videos.set(id, Object.assign(video, { srcObject: stream, muted: id === "me", controls: true }));
  video.play().catch(() => Object.assign(video, { muted: true }).play()); // no sound before a click
}
const number = new URLSearchParams(window.location.search).get("room");
const options = { media: { video: true, audio: true } };
try {
  const room = await (number ? Room.join(number, options) : Room.create(options));
  $("link").href = $("link").textContent = room.link;
  play("me", room.localStream);
  room.addEventListener("track", (e) => play(e.detail.id, e.detail.stream));
  room.addEventListener("peerleft", (e) => videos.get(e.detail.id)?.remove() ?? videos.delete(e.detail.id));
  room.addEventListener("message", (e) => $("log").append(`${e.detail.from}: ${e.detail.data}\n`));
  room.addEventListener("closed", (e) => $("status").append(` (ended: ${e.detail.reason})`));
  $("chat").addEventListener("submit", (e) => e.preventDefault() ?? room.send($("text").value));
  $("leave").addEventListener("click", () => room.leave());
  $("status").textContent = `In room ${room.number}`;
} catch (err) {
  $("status").textContent = `${err.name}: ${err.message}`;
}
