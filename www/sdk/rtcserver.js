/*
 * rtcserver.js: the client library an app imports to put a call on its own page
 * (docs/SDK.md; the types are in rtcserver.d.ts). One ES module, no build step:
 *
 *   import { Room } from "/sdk/rtcserver.js";
 *   const room = await Room.create({ media: { video: true, audio: true } });
 *   room.addEventListener("track", (e) => { video.srcObject = e.detail.stream; });
 *
 * A Room is a thin face over the modules the built-in pages use: roomclient.js (a
 * room of two, the book's protocol) and mesh.js (a group room, one perfectly
 * negotiated RTCPeerConnection per pair). They already do the SESSION/RESUME
 * reconnection, ICE restarts, TURN credentials (config.json or GETCONFIG) and
 * sign-in; this module turns their events into five and their refusals into
 * typed, rejected promises.
 *
 * The server is the one this file was loaded from: the WebSocket and config.json
 * are beside /sdk/, whatever the page's own origin (options.server overrides).
 */
import { MeshClient } from "../mesh.js";
import { RoomClient } from "../roomclient.js";
import { AuthError, parseRoom, signalingUrl } from "../rtclib.js";

// Close codes by which the server's operator ended the connection -> `closed` reasons.
const CLOSED_BY_SERVER = { 4003: "room-closed", 4004: "removed" };

/** The rtcserver release this file belongs to (tests/test_sdk.py checks it). */
const VERSION = "0.1.0";

// What an app sends with room.send() travels as {"type":"app","data":…} on the
// call's data channel (docs/PROTOCOL.md, "Between the peers").
const APP_TYPE = "app";
const DATA_CHANNEL = "control";

/** ENTERROOM was refused: the room holds as many as it can (WRONGROOM room-full). */
class RoomFullError extends Error {
  constructor(message) {
    super(message || "the room is full");
    this.name = "RoomFullError";
    this.reason = "room-full";
  }
}

/** There is no such room (WRONGROOM no-such-room, or a number that is not one). */
class NoSuchRoomError extends Error {
  constructor(message, reason) {
    super(message || "there is no such room");
    this.name = "NoSuchRoomError";
    this.reason = reason || "no-such-room";
  }
}

/** The person (or the browser's policy) refused the camera or microphone. */
class MediaPermissionError extends Error {
  constructor(message, cause) {
    super(message || "camera or microphone permission denied", { cause: cause });
    this.name = "MediaPermissionError";
  }
}

/** The error a WRONGROOM reason stands for. */
function refusal(reason) {
  if (reason === "room-full") {
    return new RoomFullError();
  }
  if (reason === "forbidden") {
    return new AuthError("forbidden", "this sign-in may not enter that room");
  }
  return new NoSuchRoomError(`there is no such room (${reason || "refused"})`, reason);
}

/** The local MediaStream that options.media asks for, or null. */
async function localMedia(media) {
  if (media === false || media === null) {
    return null;
  }
  if (typeof MediaStream === "function" && media instanceof MediaStream) {
    return media; // the app's own stream: the app owns it
  }
  try {
    return await navigator.mediaDevices.getUserMedia(media || { audio: true, video: true });
  } catch (err) {
    if (err && (err.name === "NotAllowedError" || err.name === "SecurityError")) {
      throw new MediaPermissionError(`camera or microphone permission denied: ${err.message}`, err);
    }
    throw err;
  }
}

/** Where the server is: options.server, else the origin and path this module came from. */
function serverUrls(options) {
  const base = new URL(options.server || "../", options.server ? window.location.href : import.meta.url);
  if (!base.pathname.endsWith("/")) {
    base.pathname += "/";
  }
  return { signalingUrl: signalingUrl(base), configUrl: new URL("config.json", base).href };
}

/**
 * A call in one room. Made only by Room.create() and Room.join(), which resolve
 * once this side is in the room. Events (CustomEvent, details below):
 *   "peerjoined" {id, name}   "track" {id, stream}   "message" {from, data}
 *   "peerleft" {id}           "closed" {reason}      and "reconnecting",
 *   "reconnected" {resumed} while the signaling connection is lost and back.
 * Events about peers already in the room are dispatched just after the promise
 * resolves, so listeners added right after `await` see every one of them.
 */
class Room extends EventTarget {
  /** The SDK's version: the rtcserver release it ships with. */
  static get version() {
    return VERSION;
  }

  /**
   * A new room. options.capacity > 2 makes a group room (a mesh) for that many, 2 a
   * room of two (the built-in call page and the book's client can join it); absent,
   * the server's default (--room-capacity: two, unless set higher).
   */
  static create(options) {
    return new Room(options || {})._open(null);
  }

  /** Enter room `number` (a number or its digits), a room of two or a group room. */
  static join(number, options) {
    const room = typeof number === "string" ? parseRoom(number) : number;
    if (!Number.isSafeInteger(room) || room < 0) {
      return Promise.reject(new NoSuchRoomError(`not a room number: ${String(number)}`, "invalid"));
    }
    return new Room(options || {})._open(room);
  }

  constructor(options) {
    super();
    this._options = options;
    this._urls = serverUrls(options);
    this.number = null;
    this.localStream = null;
    this.peers = new Map(); // id -> {id, name, stream}
    this.closed = false;
    this.client = null; // the RoomClient or MeshClient underneath (for the built-in pages)
    this._ownStream = false;
    this._media = Promise.resolve(null); // what the clients send: localStream, once known
    this._entered = false;
    this._queue = []; // events held until the caller has its Room
    this._pairPeer = null; // in a room of two: the id of the peer there
    this._pairCount = 0;
  }

  /** A room of two or a group room of up to this many. */
  get capacity() {
    return this.client instanceof MeshClient ? this.client.capacity : 2;
  }

  /** A link to this room: the page's own address with ?room=N (options.linkBase overrides the page). */
  get link() {
    if (this.number === null) {
      return null;
    }
    const url = new URL(this._options.linkBase || window.location.href, window.location.href);
    url.searchParams.delete("token"); // a sign-in token is personal
    url.searchParams.set("room", String(this.number));
    url.hash = "";
    return url.href;
  }

  /** Send `data` (anything JSON can carry) to every peer over the data channels; how many it reached. */
  send(data) {
    const message = { type: APP_TYPE, data: data };
    if (this.closed || !this.client) {
      return 0;
    }
    if (this.client instanceof MeshClient) {
      let sent = 0;
      for (const peer of this.client.peers.values()) {
        sent += peer.sendData(message) ? 1 : 0;
      }
      return sent;
    }
    return this.client.sendControl(message) ? 1 : 0;
  }

  /** Hang up: the others get "peerleft"; this room gets "closed" {reason: "left"}. */
  leave() {
    if (this.client && !this.closed) {
      this.client.hangUp();
    }
    this._close("left");
  }

  // ------------------------------------------------------------ internals

  async _open(number) {
    const given = this._options.media;
    if (given && typeof given.then === "function") {
      // The app's own camera start (the built-in pages): the room is entered while it
      // starts, and the stream stays the app's.
      this._media = Promise.resolve(given).then((stream) => {
        this.localStream = stream || null;
        return this.localStream;
      });
    } else {
      this.localStream = await localMedia(given);
      this._ownStream = this.localStream !== null && this.localStream !== given;
      this._media = Promise.resolve(this.localStream);
    }
    try {
      const capacity = Number(this._options.capacity) || 0;
      if (this._options.group) {
        await this._enter(this._meshClient(number, capacity)); // the app knows: no probe
      } else if (number === null && capacity > 2) {
        await this._enter(this._meshClient(null, capacity));
      } else {
        // A link does not say what kind of room it is: ENTERROOM as a room of two
        // asks (roster), and a group room answers with its capacity.
        const group = await this._enter(this._pairClient(number));
        if (group) {
          await this._enter(this._meshClient(number, number === null ? group : 0));
        }
      }
    } catch (err) {
      this._stopMedia();
      throw err;
    }
    setTimeout(() => {
      this._entered = true;
      const queue = this._queue;
      this._queue = [];
      for (const [type, detail] of queue) {
        this.dispatchEvent(new CustomEvent(type, { detail: detail }));
      }
    }, 0);
    return this;
  }

  _emit(type, detail) {
    if (this._entered) {
      this.dispatchEvent(new CustomEvent(type, { detail: detail }));
    } else {
      this._queue.push([type, detail]);
    }
  }

  _close(reason) {
    if (this.closed) {
      return;
    }
    this.closed = true;
    this._stopMedia();
    for (const id of [...this.peers.keys()]) {
      this._peerLeft(id);
    }
    this._emit("closed", { reason: reason });
  }

  _stopMedia() {
    if (this._ownStream && this.localStream) {
      for (const track of this.localStream.getTracks()) {
        track.stop();
      }
    }
  }

  _peerJoined(id, name) {
    if (!this.peers.has(id)) {
      this.peers.set(id, { id: id, name: name, stream: null });
      this._emit("peerjoined", { id: id, name: name });
    }
  }

  _peerLeft(id) {
    if (this.peers.delete(id)) {
      this._emit("peerleft", { id: id });
    }
  }

  _track(id, stream) {
    const peer = this.peers.get(id);
    if (peer) {
      peer.stream = stream;
      this._emit("track", { id: id, stream: stream });
    }
  }

  _common() {
    const o = this._options;
    return {
      ...this._urls,
      localMedia: this._media,
      token: o.token || null,
      credentials: o.credentials,
      forceRelay: !!o.forceRelay,
    };
  }

  /**
   * Start `client` and resolve once in the room: false, or when the room turned
   * out to be a group room (the caller enters it with a MeshClient) true, or the
   * capacity of the room GETROOM made.
   * Rejects with the refusal. Its later events become the Room's.
   */
  _enter(client) {
    this.client = client;
    if (this._options.onClient) {
      this._options.onClient(client); // before start(): the page sees every event
    }
    return new Promise((resolve, reject) => {
      let inRoom = false;
      const settle = (error, group) => {
        if (!inRoom) {
          inRoom = true;
          if (error) {
            reject(error);
          } else {
            resolve(group);
          }
        }
      };
      const on = (type, handler) => {
        client.addEventListener(type, (event) => {
          if (this.client === client && !this.closed) {
            handler(event.detail);
          }
        });
      };
      on("wrongroom", (d) => settle(refusal(d.reason)));
      on("servererror", (d) => {
        if (!inRoom && d.code === "forbidden") {
          client.hangUp();
          settle(new AuthError("forbidden", d.message || "this sign-in may not make a room"));
        }
      });
      let started = false; // start() resolved: a refusal of the sign-in would have rejected it
      let lost = false;
      on("disconnected", (d) => {
        if (inRoom) {
          // The operator ended it (docs/PROTOCOL.md, close codes): say which way.
          this._close(CLOSED_BY_SERVER[d?.code] || "disconnected");
        } else if (started) {
          settle(new Error("lost the connection to the server"));
        } else {
          lost = true; // start()'s rejection says why (an AuthError, say), or its end does
        }
      });
      on("roomgone", () => this._close("room-gone"));
      on("reconnecting", () => this._emit("reconnecting", {}));
      on("reconnected", (d) => {
        if (!inRoom && d?.resumed && client.room !== null) {
          this.number = client.room; // a refresh resumed its session: back in the room
          settle(null, false);
          return;
        }
        this._emit("reconnected", { resumed: !!d?.resumed });
      });
      if (client instanceof MeshClient) {
        this._wireMesh(client, on, settle);
      } else {
        this._wirePair(client, on, settle);
      }
      // Started after the caller's synchronous code: listeners that onClient's caller
      // adds right after Room.create()/join() returns see every event.
      Promise.resolve()
        .then(() => client.start())
        .then(
          () => {
            started = true;
            if (lost) {
              settle(new Error("lost the connection to the server"));
            }
          },
          (err) => settle(err),
        );
    });
  }

  _pairClient(number) {
    // A creator asks for the roster: on a server whose rooms hold more than two
    // by default (room_capacity), GETROOM made a group room, entered as a mesh.
    const capacity = Number(this._options.capacity) === 2 ? 2 : null;
    return new RoomClient({ room: number, roster: number === null, capacity: capacity, ...this._common() });
  }

  /** A room of two: RoomClient has no member ids, so each new peer gets one here. */
  _wirePair(client, on, settle) {
    const joined = () => {
      if (this._pairPeer === null) {
        this._pairCount++;
        this._pairPeer = `peer-${this._pairCount}`;
        this._peerJoined(this._pairPeer, null);
      }
    };
    const left = () => {
      if (this._pairPeer !== null) {
        const id = this._pairPeer;
        this._pairPeer = null;
        this._peerLeft(id);
      }
    };
    on("room", (d) => {
      this.number = d.room;
      if (client.joining) {
        settle(null, false);
      }
      if (client.peerPresent) {
        joined(); // we entered: the creator is there
      }
    });
    on("roster", (d) => {
      if (d.capacity > 2 && this._options.groupRooms === false) {
        settle(null, false); // the page's to handle (the call page: a server default it ignores)
      } else if (d.capacity > 2) {
        client.hangUp(); // that room empties and goes; the mesh makes one as large
        settle(null, d.capacity);
      } else {
        settle(null, false);
      }
    });
    on("conference", () => {
      if (this._options.groupRooms === false) {
        settle(new NoSuchRoomError("a group room, and this page takes rooms of two", "group-room"));
      } else {
        settle(null, true);
      }
    });
    on("peerjoined", () => {
      left(); // a leftover of an earlier peer, if any
      joined();
    });
    on("calling", joined); // an offer from a peer we had not seen (a refresh)
    on("peerleft", left);
    on("remotestream", (stream) => {
      if (this._pairPeer !== null) {
        this._track(this._pairPeer, stream);
      }
    });
    on("control", (msg) => {
      if (msg.type === APP_TYPE && this._pairPeer !== null) {
        this._emit("message", { from: this._pairPeer, data: msg.data });
      }
    });
  }

  _meshClient(number, capacity) {
    return new MeshClient({
      room: number,
      capacity: capacity || undefined,
      name: this._options.name || null,
      dataChannel: DATA_CHANNEL,
      ...this._common(),
    });
  }

  _wireMesh(_client, on, settle) {
    on("room", (d) => {
      this.number = d.room;
      settle(null, false);
    });
    on("tworoom", () => settle(new NoSuchRoomError("the room changed kind", "tworoom")));
    on("peerjoined", (d) => this._peerJoined(d.peer.id, d.peer.name));
    on("peerleft", (d) => this._peerLeft(d.peer.id));
    on("peertrack", (d) => this._track(d.peer.id, d.peer.stream));
    on("peermessage", (d) => {
      if (d.message.type === APP_TYPE) {
        this._emit("message", { from: d.peer.id, data: d.message.data });
      }
    });
  }
}

export { AuthError, MediaPermissionError, NoSuchRoomError, Room, RoomFullError, VERSION };
