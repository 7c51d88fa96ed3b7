import {
  PeerCall,
  SignalingChannel,
  configUrl,
  emit,
  finalClose,
  openSignaling,
  signalingUrl,
} from "./rtclib.js";

/*
 * phonelib.js: PhoneClient, calling people by name (docs/PROTOCOL.md,
 * "Calling people by name"), with no DOM:
 *
 *   - LOGIN (after AUTH or with a ?token= when the server asks, via
 *     openSignaling), and the directory: USERS, then DIRECTORY (net changes;
 *     USERJOINED, USERLEFT and PRESENCE of older servers are still understood);
 *   - one call at a time: CALL / ACCEPT / REJECT / CANCEL / HANGUP and the
 *     server's RINGING, INCOMINGCALL, CALLACCEPTED, REJECTED, CANCELLED,
 *     NOANSWER, HANGUP, BUSY;
 *   - the call itself: CALLACCEPTED has put both parties in a private room, so
 *     the caller makes the offer through the ordinary room relay (offer,
 *     answer, candidate, relayed verbatim as on the room page) and opens an
 *     RTCDataChannel ("text") for chat, and a second one ("control") for
 *     JSON messages between the pages (mute and camera state, file
 *     transfer: docs/PROTOCOL.md, "Between the peers"); the callee answers
 *     and gets the channels from the peer. PEERLEFT or HANGUP ends it;
 *   - surviving what the server can bridge (docs/PROTOCOL.md, "Sessions and
 *     resume"): a lost socket is resumed with backoff; a reload of the page
 *     resumes too (leavePage() keeps the session in sessionStorage, resume()
 *     takes it back), and the reloaded side then offers a new connection in
 *     the same call, which the peer answers with a new RTCPeerConnection;
 *     the offerer restarts ICE when the connection goes disconnected or failed
 *     ({"type":"offer",…,"restart":true}, answered in place). Offers, answers and
 *     candidates carry "connection", the id of the RTCPeerConnection they are
 *     for, so that a late message for an older one is dropped.
 *
 * Media: "video" sends and receives audio and video, "audio" only audio (no
 * video transceiver at all), "data" no media, only the data channel.
 *
 * Adds RtcLib.PhoneClient (and RtcLib.LoginError). Needs rtclib.js first.
 */

const REQUEST_MS = 10000;
// Reconnection after a lost socket (docs/PROTOCOL.md, "Sessions and resume"):
// exponential backoff with jitter, for at most GIVE_UP_MS.
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 8000;
const GIVE_UP_MS = 60000;

function backoff(attempt) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt);
  return base / 2 + Math.random() * base;
}
const MEDIA_KINDS = { video: ["audio", "video"], audio: ["audio"], data: [] };
const DATA_CHANNEL_LABEL = "text";
const CONTROL_LABEL = "control";
// What a reload needs (sessionStorage: this tab only; not the room page's key).
const SESSION_KEY = "rtcserver.phone";

/** The session the previous page of this tab left (and forget it: its secret works once), or null. */
function takeStoredSession() {
  try {
    const value = JSON.parse(window.sessionStorage.getItem(SESSION_KEY) || "null");
    window.sessionStorage.removeItem(SESSION_KEY);
    if (
      value &&
      typeof value.session === "string" &&
      typeof value.secret === "string" &&
      typeof value.name === "string"
    ) {
      return value;
    }
  } catch (_err) {
    // unreadable or refused: as if none
  }
  return null;
}

function storeSession(value) {
  try {
    if (value) {
      window.sessionStorage.setItem(SESSION_KEY, JSON.stringify(value));
    } else {
      window.sessionStorage.removeItem(SESSION_KEY);
    }
  } catch (_err) {
    // storage refused (private mode, full): a reload then shows the login form
  }
}

/** A random id for one RTCPeerConnection of a call: messages of an older one are told apart. */
function newConnectionId() {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function stopStream(stream) {
  if (stream) {
    stream.getTracks().forEach((track) => {
      track.stop();
    });
  }
}

/**
 * A refused LOGIN. `kind` sorts the server's reason: "taken", "invalid",
 * "auth" (the name is not the one the credentials are for) or "other".
 */
class LoginError extends Error {
  constructor(reason) {
    super(reason);
    this.name = "LoginError";
    this.reason = reason;
    if (/^name taken/.test(reason)) {
      this.kind = "taken";
    } else if (/^invalid name/.test(reason)) {
      this.kind = "invalid";
    } else if (/^auth failed/.test(reason)) {
      this.kind = "auth";
    } else {
      this.kind = "other";
    }
  }
}

/**
 * options: {signalingUrl, configUrl, token, forceRelay,
 *           getLocalMedia(media) -> Promise of MediaStream or null (never rejects)}
 *
 * Properties (read them, do not set them; tests read window.phone):
 *   name      our name once logged in, else null
 *   users     Map name -> "available" | "in-call" (everyone else online)
 *   call      the current call or null: {id (null until RINGING), peer,
 *             media, direction "outgoing" | "incoming",
 *             state "calling" | "ringing" | "accepted", room (after CALLACCEPTED)}
 *   peerCall  the PeerCall of an accepted call; pc and dc are its
 *             RTCPeerConnection and RTCDataChannel (or null)
 *   controlChannel  the call's "control" RTCDataChannel, or null
 *   localStream  the call's camera/microphone stream, or null
 *
 * Events:
 *   "users"        detail: [{name, status}] sorted by name, after every change
 *   "ringing"      the callee's phone rings (we called)
 *   "incoming"     detail: {from, media, call}
 *   "accepted"     detail: {peer, media, room}
 *   "ended"        detail: {peer, media, reason}: reason is "rejected",
 *                  "busy", "noanswer", "cancelled" (the caller gave up, or
 *                  the ring timed out), "hangup" (the peer hung up or left),
 *                  "local" (we ended it), "error" (with code and message) or
 *                  "disconnected"
 *   "localstream", "remotestream"  detail: MediaStream
 *   "call"         detail: the call's PeerCall, before its offer or answer
 *   "callstate"    detail: pc.connectionState
 *   "textopen", "textclosed"       the data channel opened / closed
 *   "text"         detail: {text} from the peer over the data channel
 *   "controlopen", "controlclosed"  the control channel opened / closed
 *   "control"      detail: an object the peer sent with sendControl
 *   "datachannel"  detail: any other RTCDataChannel the peer opened (files)
 *   "servererror"  detail: {code, message}
 *   "disconnected" detail: {code, reason}: the socket closed (not by logout())
 *   "reconnecting", "reconnected"  a lost socket is being resumed / is back
 *   "peeraway", "peerback"  the peer's socket was lost / is back (PEERAWAY, PEERBACK)
 *   "resumed"      detail: {name, call}: resume() took the session back after a reload
 */
class PhoneClient extends EventTarget {
  constructor(options) {
    super();
    options = options || {};
    this.signalingUrl = options.signalingUrl || signalingUrl();
    this.configUrl = options.configUrl || configUrl();
    this.token = options.token || null;
    this.forceRelay = !!options.forceRelay;
    this.getLocalMedia = options.getLocalMedia || (() => Promise.resolve(null));
    this.channel = null;
    this.session = null;
    this.name = null;
    this.users = new Map();
    this.call = null;
    this.peerCall = null;
    this.localStream = null;
    this._inbox = Promise.resolve();
    this._orphanCall = false; // a CALL we gave up before its RINGING: cancel it then
    this._endedIds = new Set(); // our own ended calls: late errors about them are races
    this.resumable = null; // {session, secret} once the server granted a session
    this.reconnecting = false;
    this.peerAway = false; // the peer's socket is lost (PEERAWAY) and not back yet
  }

  get pc() {
    return this.peerCall ? this.peerCall.pc : null;
  }

  get dc() {
    return this.peerCall ? this.peerCall.dc : null;
  }

  get connected() {
    return !!this.channel && this.channel.isOpen && this.name !== null;
  }

  /**
   * Connect (a new socket every time, so this also reconnects) and claim
   * `name`. `password` is used only when the server is in password mode.
   * Resolves with the name; rejects with a LoginError, an RtcLib.AuthError,
   * or an Error when the server cannot be reached.
   */
  async login(name, password) {
    this._reset();
    const channel = this._newChannel();
    try {
      this.session = await openSignaling(channel, {
        configUrl: this.configUrl,
        token: this.token,
        forceRelay: this.forceRelay,
        credentials: () => Promise.resolve({ name: name, password: password }),
      });
      const reply = await channel.request({ type: "LOGIN", name: name }, ["LOGIN"], REQUEST_MS);
      if (reply.success !== true) {
        throw new LoginError(String(reply.reason || "refused"));
      }
      this.name = typeof reply.name === "string" ? reply.name : name;
      channel.send({ type: "SESSION" }); // a lost socket can then be resumed
      return this.name;
    } catch (err) {
      if (this.channel === channel) {
        this.channel = null;
      }
      channel.close(1000, "login failed");
      throw err;
    }
  }

  /**
   * After a reload: take back the session the previous page left (leavePage()),
   * with RESUME on a new socket (it stands for AUTH). Resolves with the name when
   * the server still held it (within the grace), else null: the person logs in
   * anew. An accepted call then goes on with a new RTCPeerConnection (this side
   * offers); one that ended meanwhile is reported as "ended".
   */
  async resume() {
    const stored = takeStoredSession();
    if (!stored) {
      return null;
    }
    this._reset();
    const channel = this._newChannel();
    let reply;
    try {
      this.session = await openSignaling(channel, {
        configUrl: this.configUrl,
        token: this.token,
        forceRelay: this.forceRelay,
        resuming: true,
      });
      channel.received = Number(stored.received) || 0;
      reply = await channel.request(
        { type: "RESUME", session: stored.session, secret: stored.secret, received: channel.received },
        ["RESUMED", "ERROR"],
        REQUEST_MS,
      );
    } catch (_err) {
      reply = null;
    }
    if (reply?.type !== "RESUMED") {
      if (this.channel === channel) {
        this.channel = null;
      }
      channel.close(1000, "could not resume");
      return null;
    }
    // Synchronous from here until the call starts: what the server sends after
    // RESUMED (what we missed) is handled after this, in order.
    this.resumable = { session: reply.session, secret: reply.secret };
    this.name = stored.name;
    (Array.isArray(stored.users) ? stored.users : []).forEach((u) => {
      if (u && typeof u.name === "string") {
        this._setUser(u.name, u.status);
      }
    });
    const call = this._storedCall(stored.call);
    emit(this, "resumed", { name: this.name, call: call });
    emit(this, "users", this.userList());
    if (call) {
      this.call = call;
      if (reply.room === call.room && reply.peers > 0) {
        emit(this, "accepted", { peer: call.peer, media: call.media, room: call.room });
        this._inbox = this._inbox
          .then(() => this._startPeer(call, true))
          .catch((err) => console.error("phonelib: could not restart the call", err));
      } else {
        this._end("hangup"); // it ended while this page reloaded
      }
    }
    return this.name;
  }

  /**
   * The page is going away (pagehide: a reload, or the tab closing; the page
   * cannot tell which). A ringing call is given up; the session, the name and an
   * accepted call are kept in sessionStorage for resume() on the next page, and
   * the browser's close (1001) tells the server to wait for it (the grace).
   */
  leavePage() {
    const call = this.call;
    if (call && call.state !== "accepted") {
      this.hangUp();
    }
    if (!this.resumable || this.name === null || !this.channel) {
      return;
    }
    const accepted = this.call;
    storeSession({
      session: this.resumable.session,
      secret: this.resumable.secret,
      received: this.channel.received,
      name: this.name,
      users: this.userList(),
      call: accepted
        ? {
            id: accepted.id,
            peer: accepted.peer,
            media: accepted.media,
            direction: accepted.direction,
            room: accepted.room,
          }
        : null,
    });
  }

  /** A stored call that looks whole, as an accepted call; else null. */
  _storedCall(c) {
    if (
      !c ||
      typeof c.id !== "string" ||
      typeof c.peer !== "string" ||
      !Object.hasOwn(MEDIA_KINDS, c.media) ||
      typeof c.room !== "number"
    ) {
      return null;
    }
    return {
      id: c.id,
      peer: c.peer,
      media: c.media,
      direction: c.direction === "incoming" ? "incoming" : "outgoing",
      state: "accepted",
      room: c.room,
    };
  }

  /** A new SignalingChannel as this.channel, its messages and close handled in order. */
  _newChannel() {
    const channel = new SignalingChannel(this.signalingUrl);
    this.channel = channel;
    channel.addEventListener("message", (event) => {
      if (this.channel !== channel) {
        return;
      }
      // One message at a time, in order: an offer is fully applied before
      // the candidates that follow it.
      this._inbox = this._inbox
        .then(() => this._dispatch(event.detail))
        .catch((err) => {
          console.error("phonelib: failed to handle", event.detail, err);
        });
    });
    channel.addEventListener("close", (event) => {
      if (this.channel !== channel) {
        return;
      }
      this._inbox = this._inbox.then(() => {
        this._onChannelClosed(event.detail);
      });
    });
    return channel;
  }

  /** Leave: end any call and close the socket (no "disconnected" event); the name is free at once. */
  logout() {
    this.hangUp();
    storeSession(null);
    const channel = this.channel;
    this.channel = null;
    this.name = null;
    this.resumable = null;
    if (channel) {
      channel.close(1000, "logout");
    }
  }

  /** Ring `to`; media is "video", "audio" or "data". False if a call is already on. */
  placeCall(to, media) {
    if (this.call || !this.connected || !Object.hasOwn(MEDIA_KINDS, media)) {
      return false;
    }
    this.call = {
      id: null,
      peer: String(to),
      media: media,
      direction: "outgoing",
      state: "calling",
      room: null,
    };
    // The camera starts while the phone rings, so an accepted call offers at once.
    this._startLocalMedia(this.call);
    this._send({ type: "CALL", to: String(to), media: media });
    return true;
  }

  /** Answer the ringing incoming call. */
  accept() {
    const call = this.call;
    if (call?.direction !== "incoming" || call.state !== "ringing") {
      return false;
    }
    call.state = "accepting";
    this._startLocalMedia(call);
    return this._send({ type: "ACCEPT", call: call.id });
  }

  /** Decline the ringing incoming call. */
  reject() {
    const call = this.call;
    if (call?.direction !== "incoming") {
      return false;
    }
    this._send({ type: "REJECT", call: call.id });
    this._end("local");
    return true;
  }

  /** End the call in any state: CANCEL, REJECT or HANGUP, whichever fits. */
  hangUp() {
    const call = this.call;
    if (!call) {
      return false;
    }
    if (call.id === null) {
      this._orphanCall = true; // CANCEL it when its RINGING (or BUSY) comes
    } else if (call.direction === "incoming" && call.state === "ringing") {
      this._send({ type: "REJECT", call: call.id });
    } else if (call.direction === "outgoing" && call.state === "ringing") {
      this._send({ type: "CANCEL", call: call.id });
    } else {
      this._send({ type: "HANGUP", call: call.id });
    }
    this._end("local");
    return true;
  }

  /** Send one message to the server; false (nothing sent) when not connected. */
  _send(msg) {
    return this.channel ? this.channel.send(msg) : false;
  }

  /** Send a line of text over the data channel; false when it is not open. */
  sendText(text) {
    const dc = this.dc;
    if (dc?.readyState !== "open") {
      return false;
    }
    dc.send(String(text));
    return true;
  }

  /** Send an object (JSON) to the peer over the control channel; false when it is not open. */
  sendControl(msg) {
    const channel = this.controlChannel;
    if (channel?.readyState !== "open") {
      return false;
    }
    channel.send(JSON.stringify(msg));
    return true;
  }

  /** The call's control channel (RTCDataChannel "control"), or null. */
  get controlChannel() {
    return this.peerCall ? this.peerCall.controlChannel || null : null;
  }

  /** The directory as a sorted array of {name, status}. */
  userList() {
    return Array.from(this.users.entries())
      .map((entry) => ({ name: entry[0], status: entry[1] }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  // ------------------------------------------------------------ messages

  async _dispatch(msg) {
    const call = this.call;
    const ours = call !== null && call.id !== null && msg.call === call.id;
    switch (msg.type) {
      case "SESSION":
        if (typeof msg.session === "string" && typeof msg.secret === "string") {
          this.resumable = { session: msg.session, secret: msg.secret };
        }
        return;
      case "USERS":
        this.users.clear();
        (Array.isArray(msg.users) ? msg.users : []).forEach(function (u) {
          if (u && typeof u.name === "string") {
            this._setUser(u.name, u.status);
          }
        }, this);
        emit(this, "users", this.userList());
        return;
      case "DIRECTORY":
        // The net change since the last frame: a name not known is a join, status
        // "offline" a departure (docs/PROTOCOL.md, "Directory").
        (Array.isArray(msg.changes) ? msg.changes : []).forEach(function (u) {
          if (u && typeof u.name === "string") {
            this._setUser(u.name, u.status);
          }
        }, this);
        emit(this, "users", this.userList());
        return;
      case "USERJOINED":
      case "PRESENCE":
        if (typeof msg.name === "string" && msg.name !== this.name) {
          this._setUser(msg.name, msg.status);
          emit(this, "users", this.userList());
        }
        return;
      case "USERLEFT":
        if (typeof msg.name === "string" && this.users.delete(msg.name)) {
          emit(this, "users", this.userList());
        }
        return;
      case "RINGING":
        if (this._orphanCall) {
          this._orphanCall = false;
          this._send({ type: "CANCEL", call: msg.call });
          this._endedIds.add(msg.call);
        } else if (call && call.direction === "outgoing" && call.id === null) {
          call.id = String(msg.call);
          call.state = "ringing";
          emit(this, "ringing", { to: call.peer });
        }
        return;
      case "BUSY":
        if (this._orphanCall) {
          this._orphanCall = false;
        } else if (call && call.direction === "outgoing" && call.id === null) {
          this._end("busy");
        }
        return;
      case "INCOMINGCALL":
        if (this.name === null) {
          return; // not logged in: nobody can be calling us
        }
        if (call) {
          // Cannot happen (the server answers BUSY for us), but never drop a call silently.
          this._send({ type: "REJECT", call: msg.call });
          return;
        }
        this.call = {
          id: String(msg.call),
          peer: String(msg.from),
          media: Object.hasOwn(MEDIA_KINDS, msg.media) ? msg.media : "video",
          direction: "incoming",
          state: "ringing",
          room: null,
        };
        emit(this, "incoming", { from: this.call.peer, media: this.call.media, call: this.call.id });
        return;
      case "CALLACCEPTED":
        if (ours) {
          call.state = "accepted";
          call.room = msg.room;
          emit(this, "accepted", { peer: call.peer, media: call.media, room: call.room });
          await this._startPeer(call, call.direction === "outgoing");
        }
        return;
      case "REJECTED":
        if (ours) {
          this._end("rejected");
        }
        return;
      case "CANCELLED":
        if (ours) {
          this._end("cancelled");
        }
        return;
      case "NOANSWER":
        if (ours) {
          this._end("noanswer");
        }
        return;
      case "HANGUP":
        if (ours) {
          this._end("hangup");
        }
        return;
      case "PEERLEFT":
        // The peer's socket went away (its HANGUP follows); or it left the
        // private room some other way: either way the call is over.
        if (call && call.state === "accepted") {
          this._send({ type: "HANGUP", call: call.id });
          this._end("hangup");
        }
        return;
      case "PEERAWAY":
        // Its socket was lost or its page reloads: the server keeps its place
        // for the grace. No ICE restart meanwhile (nobody could answer it).
        if (call && call.state === "accepted") {
          this.peerAway = true;
          emit(this, "peeraway", { peer: call.peer });
        }
        return;
      case "PEERBACK":
        if (call && call.state === "accepted") {
          this.peerAway = false;
          emit(this, "peerback", { peer: call.peer });
          this._restartIceIfNeeded(); // a page that reloaded offers anew instead: that wins
        }
        return;
      case "offer":
        await this._onOffer(msg);
        return;
      case "answer":
      case "candidate":
        if (this.peerCall && this._forThisConnection(msg)) {
          await this.peerCall.handle(msg);
        }
        return;
      case "ERROR":
        this._onError(msg);
        return;
      default:
        return; // PEERJOINED (never in a private room) and types we do not know
    }
  }

  _onError(msg) {
    const code = String(msg.code || "");
    const message = String(msg.message || "");
    const call = this.call;
    if (msg.call !== undefined && this._endedIds.has(msg.call)) {
      return; // about a call we already ended: a race we lost, harmless
    }
    if (code === "no-peer") {
      return; // a candidate that crossed the peer's departure
    }
    const aboutOurCall =
      call !== null &&
      ((call.id === null && msg.to === call.peer) || (call.id !== null && msg.call === call.id));
    if (aboutOurCall && code !== "already-accepted") {
      this._end("error", { code: code, message: message });
      return;
    }
    if (this._orphanCall && msg.to !== undefined) {
      this._orphanCall = false;
      return;
    }
    emit(this, "servererror", { code: code, message: message });
  }

  /**
   * An offer: the first of the call (we are the callee), an ICE restart of the
   * current connection (answered in place), or a new connection from a peer
   * whose page reloaded (a new RTCPeerConnection answers it).
   */
  async _onOffer(msg) {
    const call = this.call;
    const current = this.peerCall;
    if (call?.state !== "accepted") {
      return;
    }
    if (msg.restart === true) {
      // Only the offerer restarts: one for a connection we offered is stale (the
      // peer restarted its old one while this page reloaded), as is one for another.
      if (current && !current.offerer && this._forThisConnection(msg)) {
        await current.handle(msg);
      }
      return;
    }
    let answering = current;
    if (!current || current.offerer || current.pc.remoteDescription) {
      answering = await this._startPeer(call, false); // the peer has a new connection
    }
    if (answering && this.peerCall === answering) {
      answering.connection = typeof msg.connection === "string" ? msg.connection : null;
      await answering.handle(msg);
    }
  }

  /** Whether a message from the peer is about our current connection (older pages send no id). */
  _forThisConnection(msg) {
    const id = this.peerCall ? this.peerCall.connection : null;
    return typeof msg.connection !== "string" || id === null || msg.connection === id;
  }

  /** The offerer of a connection that lost its path restarts ICE (rtclib.js: PeerCall.restartIce). */
  _restartIceIfNeeded() {
    const peerCall = this.peerCall;
    if (!peerCall?.offerer || !peerCall.needsIceRestart || this.peerAway || this.reconnecting) {
      return;
    }
    if (!this.channel?.isOpen) {
      return;
    }
    peerCall.restartIce().catch((err) => console.warn("phonelib: ICE restart failed", err));
  }

  _setUser(name, status) {
    if (name === this.name) {
      return;
    }
    if (status === "offline") {
      this.users.delete(name);
    } else {
      this.users.set(name, status === "in-call" ? "in-call" : "available");
    }
  }

  // ---------------------------------------------------------------- call

  _startLocalMedia(call) {
    if (call.localMedia) {
      return call.localMedia;
    }
    call.localMedia =
      call.media === "data"
        ? Promise.resolve(null)
        : Promise.resolve(this.getLocalMedia(call.media))
            .catch(() => null)
            .then((stream) => {
              if (this.call !== call) {
                stopStream(stream); // the call ended while the camera started
                return null;
              }
              this.localStream = stream;
              if (stream) {
                emit(this, "localstream", stream);
              }
              return stream;
            });
    return call.localMedia;
  }

  /**
   * A new RTCPeerConnection for `call` (closing the one it had): the caller's
   * first, the callee's, or a new one after a page reloaded. `asCaller`: this side
   * offers (and opens the data channels).
   */
  async _startPeer(call, asCaller) {
    this._closePeer();
    const results = await Promise.all([this._startLocalMedia(call), this.session.rtcConfig()]);
    if (this.call !== call) {
      return null; // ended while we waited
    }
    this._closePeer();
    const peerCall = new PeerCall({
      rtcConfig: results[1],
      localStream: results[0],
      // Every offer, answer and candidate names its connection (see the header).
      send: (msg) => (this.channel ? this.channel.send({ ...msg, connection: peerCall.connection }) : false),
      receive: MEDIA_KINDS[call.media],
      dataChannel: DATA_CHANNEL_LABEL,
    });
    peerCall.connection = asCaller ? newConnectionId() : null; // the callee takes the offer's
    this.peerCall = peerCall;
    emit(this, "call", peerCall);
    peerCall.addEventListener("remotestream", (event) => {
      if (this.peerCall === peerCall) {
        emit(this, "remotestream", event.detail);
      }
    });
    peerCall.addEventListener("statechange", (event) => {
      if (this.peerCall === peerCall) {
        emit(this, "callstate", event.detail);
        this._restartIceIfNeeded();
      }
    });
    peerCall.addEventListener("datachannel", (event) => {
      const dc = event.detail;
      if (dc.label === CONTROL_LABEL && !peerCall.controlChannel) {
        this._useControl(peerCall, dc);
        return;
      }
      if (dc !== peerCall.dc) {
        // A file's channel (filetransfer.js): the page decides.
        if (this.peerCall === peerCall) {
          emit(this, "datachannel", dc);
        } else {
          dc.close();
        }
        return;
      }
      dc.onopen = () => {
        if (this.peerCall === peerCall) {
          emit(this, "textopen");
        }
      };
      dc.onclose = () => {
        if (this.peerCall === peerCall) {
          emit(this, "textclosed");
        }
      };
      dc.onmessage = (e) => {
        if (this.peerCall === peerCall && typeof e.data === "string") {
          emit(this, "text", { text: e.data });
        }
      };
      if (dc.readyState === "open") {
        emit(this, "textopen");
      }
    });
    if (asCaller) {
      // The control channel goes in the same SCTP association as the text
      // channel that call() opens: no renegotiation.
      this._useControl(peerCall, peerCall.pc.createDataChannel(CONTROL_LABEL));
      await peerCall.call();
    }
    return peerCall;
  }

  _useControl(peerCall, channel) {
    peerCall.controlChannel = channel;
    const current = () => this.peerCall === peerCall;
    channel.onopen = () => {
      if (current()) {
        emit(this, "controlopen");
      }
    };
    channel.onclose = () => {
      if (current()) {
        emit(this, "controlclosed");
      }
    };
    channel.onmessage = (event) => {
      if (!current() || typeof event.data !== "string") {
        return;
      }
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch (_err) {
        return; // not JSON: ignored, like an unknown type
      }
      if (msg && typeof msg === "object" && typeof msg.type === "string") {
        emit(this, "control", msg);
      }
    };
    if (channel.readyState === "open" && current()) {
      emit(this, "controlopen");
    }
  }

  _end(reason, extra) {
    const call = this.call;
    if (!call) {
      return;
    }
    this.call = null;
    if (call.id !== null) {
      this._endedIds.add(call.id);
    }
    this._closePeer();
    this.peerAway = false;
    stopStream(this.localStream);
    this.localStream = null;
    const detail = { peer: call.peer, media: call.media, reason: reason };
    if (extra) {
      detail.code = extra.code;
      detail.message = extra.message;
    }
    emit(this, "ended", detail);
  }

  /** Close the call's RTCPeerConnection, if any; the page hears its channels close. */
  _closePeer() {
    const peerCall = this.peerCall;
    if (!peerCall) {
      return;
    }
    const textOpen = peerCall.dc?.readyState === "open";
    const controlOpen = peerCall.controlChannel?.readyState === "open";
    peerCall.close(); // "callstate" closed, while it is still the current one
    this.peerCall = null;
    if (textOpen) {
      emit(this, "textclosed");
    }
    if (controlOpen) {
      emit(this, "controlclosed");
    }
  }

  _onChannelClosed(detail) {
    if (this.reconnecting) {
      return; // a failed attempt of the reconnection: it carries on
    }
    if (this.resumable && this.name !== null && !finalClose(detail)) {
      this._reconnect(this.channel, detail).catch((err) =>
        console.error("phonelib: reconnection failed", err),
      );
      return;
    }
    this.channel = null;
    this.name = null;
    this.users.clear();
    this._end("disconnected");
    emit(this, "disconnected", detail);
  }

  /** The socket was lost: reconnect with backoff and RESUME; the call's media goes on. */
  async _reconnect(channel, detail) {
    this.reconnecting = true;
    emit(this, "reconnecting");
    const started = Date.now();
    for (let attempt = 0; this.channel === channel && Date.now() - started < GIVE_UP_MS; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, backoff(attempt)));
      if (this.channel !== channel) {
        return; // logged out meanwhile
      }
      try {
        await channel.open();
      } catch (_err) {
        continue;
      }
      let reply;
      try {
        const r = this.resumable;
        const resume = { type: "RESUME", session: r.session, secret: r.secret, received: channel.received };
        reply = await channel.request(resume, ["RESUMED", "ERROR"], REQUEST_MS);
      } catch (_err) {
        continue;
      }
      if (reply.type === "RESUMED") {
        this.resumable = { session: reply.session, secret: reply.secret };
        this.reconnecting = false;
        emit(this, "reconnected");
        this._restartIceIfNeeded(); // the path may have broken with the socket
        return;
      }
      break; // refused: log in again as a newcomer (the page's Reconnect)
    }
    this.reconnecting = false;
    this.resumable = null;
    if (channel.isOpen) {
      channel.close(1000, "could not resume"); // its close event ends the session here
    } else {
      this._onChannelClosed(detail);
    }
  }

  _reset() {
    if (this.call) {
      this._end("local");
    }
    this.users.clear();
    this.name = null;
    this.resumable = null;
    this.peerAway = false;
    this._orphanCall = false;
    this._inbox = Promise.resolve();
  }
}

export { PhoneClient, LoginError };
