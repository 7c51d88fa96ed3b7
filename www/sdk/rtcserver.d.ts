/**
 * Types for rtcserver.js, the client library (docs/SDK.md). Served beside it at
 * /sdk/rtcserver.d.ts; tools/tsc checks them against the module (tools/test.sh).
 */

/** The rtcserver release this SDK belongs to (also Room.version). */
export declare const VERSION: string;

/** A name and password for the server's "password" auth mode. */
export interface Credentials {
  name: string;
  password: string;
}

/** What Room.create() and Room.join() take; every field is optional. */
export interface RoomOptions {
  /**
   * getUserMedia constraints (default: audio and video), a MediaStream of the
   * app's own (the app keeps ownership), or false / null for none. A Promise of
   * the app's stream is not waited for: the room is entered while it starts.
   */
  media?: MediaStreamConstraints | MediaStream | Promise<MediaStream | null> | false | null;
  /**
   * Room.create(): more than 2 makes a group room (a mesh) for that many, 2 a room
   * of two; absent, the server's default (--room-capacity: two unless set higher).
   */
  capacity?: number;
  /** A sign-in token (the server's "token" auth mode). */
  token?: string | null;
  /** Password mode: asked for the name and password when the server wants them. */
  credentials?: () => Credentials | Promise<Credentials>;
  /** The name the others see (group rooms). */
  name?: string | null;
  /** Relay all media through TURN (iceTransportPolicy "relay"). */
  forceRelay?: boolean;
  /** The server's base URL; default: where rtcserver.js was loaded from. */
  server?: string;
  /** The page the room's link points at; default: this page's address. */
  linkBase?: string;
  /**
   * false: rooms of two only; a link to a group room rejects with NoSuchRoomError
   * (reason "group-room") instead of entering it as a mesh. Default true.
   */
  groupRooms?: boolean;
  /**
   * true: the app knows the room is (or makes) a group room: entered as a mesh at
   * once, without asking first; a room of two rejects with NoSuchRoomError
   * (reason "tworoom").
   */
  group?: boolean;
  /**
   * Called with each client the Room makes underneath (roomclient.js or mesh.js),
   * before it connects (the first one synchronously when `media` is a Promise):
   * for pages that need more than the Room's events (the built-in pages).
   * Not part of the stable API.
   */
  onClient?: (client: EventTarget) => void;
}

/** A peer in the room. */
export interface Peer {
  id: string;
  name: string | null;
  /** Its media, once a track arrived. */
  stream: MediaStream | null;
}

export interface PeerJoinedDetail {
  id: string;
  name: string | null;
}
export interface TrackDetail {
  id: string;
  stream: MediaStream;
}
export interface MessageDetail {
  from: string;
  /** Whatever the sender passed to send(), as JSON carried it. */
  data: unknown;
}
export interface PeerLeftDetail {
  id: string;
}
export type ClosedReason = "left" | "disconnected" | "room-gone";
export interface ClosedDetail {
  reason: ClosedReason;
}
export type ReconnectingDetail = Record<string, never>;
export interface ReconnectedDetail {
  /** True when the server took the session back (SESSION/RESUME): the same call. */
  resumed: boolean;
}

/** Each of a Room's events and its CustomEvent's detail. */
export interface RoomEventMap {
  peerjoined: CustomEvent<PeerJoinedDetail>;
  track: CustomEvent<TrackDetail>;
  message: CustomEvent<MessageDetail>;
  peerleft: CustomEvent<PeerLeftDetail>;
  closed: CustomEvent<ClosedDetail>;
  reconnecting: CustomEvent<ReconnectingDetail>;
  reconnected: CustomEvent<ReconnectedDetail>;
}

/** A call in one room; made by Room.create() and Room.join() only. */
export declare class Room extends EventTarget {
  /** The SDK's version: the rtcserver release it ships with. */
  static get version(): string;
  /** A new room (GETROOM). Rejects with AuthError or MediaPermissionError. */
  static create(options?: RoomOptions): Promise<Room>;
  /**
   * Enter a room (ENTERROOM) by its number or its digits. Rejects with
   * RoomFullError, NoSuchRoomError, AuthError or MediaPermissionError.
   */
  static join(number: number | string, options?: RoomOptions): Promise<Room>;

  private constructor(options: RoomOptions);

  /** The room's number, set once in the room. */
  number: number | null;
  /** This side's media (null with media: false). */
  localStream: MediaStream | null;
  /** The peers in the room now, by id. */
  peers: Map<string, Peer>;
  /** True after leave() or once the room closed. */
  closed: boolean;
  /** The client underneath (roomclient.js or mesh.js); not part of the stable API. */
  client: EventTarget | null;
  /** 2 for a room of two, else the group room's capacity. */
  get capacity(): number;
  /** The shareable ?room=N link, or null before the room has a number. */
  get link(): string | null;

  /** Send `data` (anything JSON can carry) to every peer; how many it reached. */
  send(data: unknown): number;
  /** Hang up: the others get "peerleft"; this room gets "closed" {reason: "left"}. */
  leave(): void;

  addEventListener<K extends keyof RoomEventMap>(
    type: K,
    listener: (this: Room, event: RoomEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof RoomEventMap>(
    type: K,
    listener: (this: Room, event: RoomEventMap[K]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}

/** Room.join(): the room holds as many as it can (WRONGROOM room-full). */
export declare class RoomFullError extends Error {
  constructor(message?: string);
  name: "RoomFullError";
  reason: "room-full";
}

/** Room.join(): no such room (WRONGROOM no-such-room, or not a room number: "invalid"). */
export declare class NoSuchRoomError extends Error {
  constructor(message?: string, reason?: string);
  name: "NoSuchRoomError";
  reason: string;
}

/** The person (or the browser's policy) refused the camera or microphone. */
export declare class MediaPermissionError extends Error {
  constructor(message?: string, cause?: unknown);
  name: "MediaPermissionError";
}

/** The server refused the sign-in (a token or password), or the room is forbidden to it. */
export declare class AuthError extends Error {
  constructor(code: string, message?: string);
  name: "AuthError";
  /** Why: "forbidden", or the server's reason for refusing the sign-in. */
  code: string;
}
