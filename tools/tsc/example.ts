// A typed app page on the SDK (the TypeScript twin of www/examples/minimal.js): it
// compiles only while the declarations offer what docs/SDK.md promises.
import {
  AuthError,
  MediaPermissionError,
  NoSuchRoomError,
  Room,
  type RoomOptions,
  RoomFullError,
  VERSION,
} from "../../www/sdk/rtcserver.js";

const videos = new Map<string, HTMLVideoElement>();

function play(id: string, stream: MediaStream | null): void {
  const video = videos.get(id) ?? document.body.appendChild(document.createElement("video"));
  video.srcObject = stream;
  videos.set(id, video);
}

export async function call(number: string | null): Promise<Room | string> {
  const options: RoomOptions = { media: { video: true, audio: true }, name: "ada" };
  let room: Room;
  try {
    room = await (number ? Room.join(number, options) : Room.create({ ...options, capacity: 4 }));
  } catch (err) {
    if (err instanceof RoomFullError) return `full: ${err.reason}`;
    if (err instanceof NoSuchRoomError) return `no such room: ${err.reason}`;
    if (err instanceof AuthError) return `sign-in refused: ${err.code}`;
    if (err instanceof MediaPermissionError) return `no camera: ${err.message}`;
    throw err;
  }
  const link: string | null = room.link;
  const where: number | null = room.number;
  const capacity: number = room.capacity;
  play("me", room.localStream);
  room.addEventListener("peerjoined", (e) => console.log(e.detail.id, e.detail.name ?? "?"));
  room.addEventListener("track", (e) => play(e.detail.id, e.detail.stream));
  room.addEventListener("message", (e) => console.log(`${e.detail.from}:`, e.detail.data));
  room.addEventListener("peerleft", (e) => videos.get(e.detail.id)?.remove());
  room.addEventListener("reconnected", (e) => console.log(e.detail.resumed ? "resumed" : "new session"));
  room.addEventListener("closed", (e) => {
    const reason: "left" | "disconnected" | "room-gone" = e.detail.reason;
    console.log(reason);
  });
  for (const peer of room.peers.values()) play(peer.id, peer.stream);
  const reached: number = room.send({ hello: "world", version: VERSION, at: Room.version });
  console.log(link, where, capacity, reached, room.closed);
  room.leave();
  return room;
}
