import {
  AuthError,
  PeerCall,
  SignalingChannel,
  backoff,
  configUrl,
  emit,
  finalClose,
  openSignaling,
  reconnect,
  resumeSession,
  signalingUrl,
  sleep,
  storeSession as storeSessionUnder,
  storedSession as storedSessionUnder,
} from "./rtclib.js";

/*
 * roomclient.js: RoomClient, the room protocol of the video-call page
 * (index.html): GETROOM / ENTERROOM, PEERJOINED / PEERLEFT / WRONGROOM,
 * chat (CHATMSG), ERROR, on top of rtclib.js's SignalingChannel,
 * openSignaling and PeerCall. Each call also carries an RTCDataChannel named
 * "control" for the peers' own messages (mute state, file offers: see
 * docs/PROTOCOL.md, "Between the peers"); they never pass the server.
 */

const CONTROL_LABEL = "control";
const SESSION_KEY = "rtcserver.session";
const RESUME_MS = 10000;
// Reconnection tries (with rtclib.js's backoff) for at most GIVE_UP_MS; a room still
// full of our own away session is tried again meanwhile.
const GIVE_UP_MS = 120000;

const storedSession = () => storedSessionUnder(SESSION_KEY);
const storeSession = (value) => storeSessionUnder(SESSION_KEY, value);

/** The room number of a GETROOM reply, or null when it is not a safe integer. */
function roomFromMessage(value) {
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) {
    return value;
  }
  return null;
}

// ------------------------------------------------------------- RoomClient

/**
 * The book's room flow. Without a room number it creates a room (GETROOM)
 * and waits; with one it enters it (ENTERROOM) and, as the newcomer, makes
 * the offer. When the peer leaves, the call is torn down and the client waits
 * in the same room for the next peer, who will make a new offer.
 *
 * options: {room (number or null), signalingUrl, configUrl, forceRelay,
 *           localMedia (Promise of MediaStream or null),
 *           token (for a server in token mode), credentials (a function
 *             giving a Promise of {name, password}, for password mode),
 *           roster (GETROOM asks for ROOM: the "roster" event says the capacity),
 *           capacity (GETROOM asks for it; absent: the server's room_capacity)}
 * start() rejects with an AuthError when the server refuses the sign-in.
 * Properties: room, peerPresent, call (PeerCall or null), pc (its
 *   RTCPeerConnection or null: tests read window.rtc.pc).
 * Events: "room" {room}, "wrongroom" {reason}, "waitingforseat" {seconds} (a seat
 *   held by an away member frees then: the client enters by itself), "conference" {room} (the link
 *   leads to a group call: the page hands over to conference.html), "roster"
 *   {capacity, members} (a creator's ROOM: with options.roster, or in a group
 *   room), "peerjoined", "peerleft",
 *   "calling", "remotestream" (MediaStream), "callstate" (connectionState),
 *   "chat" {text}, "servererror" {code, message}, "disconnected" {code, reason},
 *   "unhandled" (any other message, for pages that extend the protocol),
 *   "call" (the new PeerCall, before its offer or answer), "controlopen",
 *   "controlclosed", "control" (an object the peer sent with sendControl),
 *   "datachannel" (any other RTCDataChannel the peer opened).
 * Every call can send audio and video even when this side started without a
 * camera (PeerCall's sendSlots), so a page can switch sources with replaceTrack.
 */
class RoomClient extends EventTarget {
  constructor(options) {
    super();
    this.room = options.room == null ? null : options.room;
    this.joining = this.room !== null;
    this.signalingUrl = options.signalingUrl || signalingUrl();
    this.configUrl = options.configUrl || configUrl();
    this.forceRelay = !!options.forceRelay;
    this.localMedia = Promise.resolve(options.localMedia || null);
    this.token = options.token || null;
    this.credentials =
      options.credentials ||
      (() => Promise.reject(new AuthError("auth-required", "this server asks for a name and password")));
    this.channel = new SignalingChannel(this.signalingUrl);
    this.session = null; // from openSignaling: auth mode, name, rtcConfig()
    this.call = null;
    this.peerPresent = false;
    this.finished = false; // after WRONGROOM, hang-up or a lost server
    this._inbox = Promise.resolve();
    this._epoch = 0; // bumped whenever the peer changes, to drop stale work
    this.resumable = null; // {session, secret, room} once the server granted a session
    this.reconnecting = false;
    this._asCaller = false;
    this._seatTimer = null; // the ENTERROOM again while an away member holds a seat
    // GETROOM with roster: the server follows its reply with ROOM, which says the
    // room's capacity (a server whose room_capacity is above two makes group rooms).
    this.roster = !!options.roster;
    this.capacity = options.capacity || null;
  }

  get pc() {
    return this.call ? this.call.pc : null;
  }

  /** Connect and enter (or create) the room. */
  async start() {
    this.channel.addEventListener("message", (event) => {
      // One message at a time, in order: an offer is fully applied before
      // the candidates that follow it.
      this._inbox = this._inbox
        .then(() => this._dispatch(event.detail))
        .catch((err) => {
          console.error("rtclib: failed to handle", event.detail, err);
        });
    });
    this.channel.addEventListener("close", (event) => {
      this._inbox = this._inbox.then(() => {
        this._onChannelClosed(event.detail);
      });
    });
    try {
      this.session = await openSignaling(this.channel, {
        configUrl: this.configUrl,
        token: this.token,
        credentials: this.credentials,
        forceRelay: this.forceRelay,
      });
    } catch (err) {
      // Refused or unreachable: the caller hears it from this rejection, not
      // from a "disconnected" event as well.
      this.finished = true;
      this.channel.close(1000, "sign-in failed");
      throw err;
    }
    if (this.finished) {
      return; // hung up while signing in
    }
    window.addEventListener("pagehide", () => this._remember());
    const stored = storedSession();
    if (stored && this.room !== null && stored.room === this.room) {
      // A refresh within the grace: the same session, the same room.
      this.channel.received = Number(stored.received) || 0;
      this.resumable = stored;
      const reply = await this._resume();
      if (reply && reply.type === "RESUMED") {
        this._resumed(reply, true);
        return;
      }
    }
    this.channel.send({ type: "SESSION" });
    if (this.joining) {
      // The roster (ROOM) says what kind of room the link leads to: a room of
      // two is this page's; a larger one is a group call (conference.html).
      this.channel.send({ type: "ENTERROOM", value: this.room, roster: true });
    } else {
      const ask = { type: "GETROOM", value: "" };
      if (this.roster) {
        ask.roster = true;
      }
      if (this.capacity) {
        ask.capacity = this.capacity; // 2: a room of two even where rooms hold more by default
      }
      this.channel.send(ask);
    }
  }

  /** Send an object to the peer over the call's control channel; false when it is not open. */
  sendControl(msg) {
    const dc = this.call?.dc;
    if (dc?.readyState !== "open") {
      return false;
    }
    dc.send(JSON.stringify(msg));
    return true;
  }

  /** Send a chat line to the peer (through the server). */
  sendChat(text) {
    return this.channel.send({ type: "CHATMSG", value: String(text) });
  }

  /** Leave: end the call and the connection (the server tells the peer). */
  hangUp() {
    this.finished = true;
    this._endCall();
    storeSession(null);
    this.channel.close(1000, "hang up");
  }

  _remember() {
    if (this.resumable && !this.finished) {
      storeSession({ ...this.resumable, room: this.room, received: this.channel.received });
    }
  }

  /** RESUME on the channel's (new) socket: the RESUMED or ERROR reply, or null if the socket failed. */
  _resume() {
    return resumeSession(this.channel, this.resumable, RESUME_MS);
  }

  /** The session is back. After a refresh the call is gone: make a new offer. */
  _resumed(reply, afterRefresh) {
    this.resumable = { session: reply.session, secret: reply.secret, room: this.room };
    this._remember();
    this.reconnecting = false;
    emit(this, "reconnected", { resumed: true });
    if (afterRefresh) {
      this.joining = true;
      this.peerPresent = reply.peers > 0;
      emit(this, "room", { room: this.room });
      if (this.peerPresent) {
        this._epoch++;
        this._startCall(true).catch((err) => console.error("rtclib: could not restart the call", err));
      }
    } else {
      this._restartIceIfNeeded();
    }
  }

  /** The ICE restart: only the side that made the offer does it (no glare). */
  async _restartIceIfNeeded() {
    const call = this.call;
    if (call?.needsIceRestart && this._asCaller && this.channel.isOpen) {
      await call.restartIce(); // rtclib.js: {"type":"offer",…,"restart":true}
    }
  }

  /** The socket was lost: reconnect with backoff, RESUME, else re-enter as a newcomer. */
  async _reconnect() {
    this.reconnecting = true;
    emit(this, "reconnecting");
    const back = await reconnect(
      this.channel,
      {
        finished: () => this.finished,
        resume: () => this._resume(),
        resumed: (reply) => this._resumed(reply, false),
        refused: () => {
          this._epoch++;
          this._endCall();
          this.peerPresent = false;
        },
        room: () => this.room,
        reenter: (started) => this._reenter(started),
      },
      GIVE_UP_MS,
    );
    if (!back && !this.finished) {
      this.finished = true;
      this.reconnecting = false;
      storeSession(null);
      this.channel.close(1000, "gave up");
      emit(this, "disconnected", { code: 1006, reason: "could not reconnect" });
    }
  }

  /**
   * ENTERROOM again as a newcomer. A room-full answer may be our own away session
   * still holding its place (another node, a spent secret): tried again until it ends.
   * Resolves true when in the room, false when the room is gone, null to try the
   * connection again.
   */
  async _reenter(started) {
    for (let attempt = 0; !this.finished && Date.now() - started < GIVE_UP_MS; attempt++) {
      // A successful ENTERROOM has no reply: the server answers in order, so a
      // CONFIG that comes without a WRONGROOM before it means we are in.
      this.channel.send({ type: "ENTERROOM", value: this.room });
      let reply;
      try {
        reply = await this.channel.request({ type: "GETCONFIG" }, ["WRONGROOM", "CONFIG"], RESUME_MS);
      } catch (_err) {
        return null;
      }
      if (reply.type === "CONFIG") {
        this.joining = true;
        this.reconnecting = false;
        this.peerPresent = true;
        emit(this, "reconnected", { resumed: false });
        this._startCall(true).catch((err) => console.error("rtclib: could not start the call", err));
        return true;
      }
      if (reply.reason !== "room-full") {
        this.finished = true;
        this.reconnecting = false;
        storeSession(null);
        this.channel.close(1000, "room gone");
        emit(this, "roomgone", { reason: String(reply.reason || "") });
        return false;
      }
      await sleep(backoff(attempt));
    }
    return null;
  }

  async _dispatch(msg) {
    if (this.finished) {
      return;
    }
    // Server messages that arrive outside the state they answer are ignored: the
    // server refuses to relay its own types, and the page does not trust them either.
    switch (msg.type) {
      case "SESSION":
        if (typeof msg.session === "string" && typeof msg.secret === "string") {
          this.resumable = { session: msg.session, secret: msg.secret, room: this.room };
          this._remember();
        }
        return;
      case "PEERAWAY":
        emit(this, "peeraway");
        return;
      case "PEERBACK":
        emit(this, "peerback");
        return;
      case "GETROOM": {
        if (this.joining || this.room !== null) {
          return; // we never asked for a room
        }
        const room = roomFromMessage(msg.value);
        if (room === null) {
          emit(this, "servererror", { code: "bad-room", message: "the server sent an unusable room number" });
          return;
        }
        this.room = room;
        this._remember();
        emit(this, "room", { room: room });
        return;
      }
      case "ROOM": {
        if (!this.joining && this.room !== null) {
          // The roster our GETROOM asked for (options.roster), or a group room's.
          emit(this, "roster", { capacity: msg.capacity, members: msg.members || [] });
          return;
        }
        if (!this.joining || this.peerPresent || this.call) {
          return; // only our ENTERROOM is answered with ROOM
        }
        if (typeof msg.capacity === "number" && msg.capacity > 2) {
          this.finished = true;
          this.channel.close(1000, "a group call");
          emit(this, "conference", { room: this.room });
          return;
        }
        // A room exists only while someone is in it, so a successful entry
        // means a peer is there.
        this.peerPresent = true;
        emit(this, "room", { room: this.room });
        // Not awaited in the inbox: a PEERLEFT while the camera starts must be
        // seen at once (it cancels the offer).
        this._startCall(true).catch((err) => {
          console.error("rtclib: could not start the call", err);
        });
        return;
      }
      case "WRONGROOM":
        if (!this.joining) {
          return; // only an ENTERROOM is answered with WRONGROOM
        }
        if (msg.reason === "room-full" && typeof msg.retry === "number" && msg.retry >= 0) {
          this._waitForSeat(msg.retry);
          return;
        }
        this.finished = true;
        this.peerPresent = false;
        this._endCall();
        this.channel.close(1000, "wrong room");
        emit(this, "wrongroom", { reason: typeof msg.reason === "string" ? msg.reason : "" });
        return;
      case "PEERJOINED":
        if (this.room === null) {
          return;
        }
        this._epoch++;
        this._endCall(); // a leftover call from an earlier peer, if any
        this.peerPresent = true;
        emit(this, "peerjoined");
        return;
      case "PEERLEFT":
        if (!this.peerPresent) {
          return;
        }
        this._epoch++;
        this.peerPresent = false;
        this._endCall();
        emit(this, "peerleft");
        return;
      case "offer": {
        if (msg.restart === true && this.call) {
          await this.call.handle(msg); // an ICE restart of this call: answered in place
          return;
        }
        // Each offer is a new call: this page never renegotiates (but for ICE restarts).
        this.peerPresent = true;
        const answering = await this._startCall(false);
        if (answering) {
          await answering.handle(msg);
        }
        return;
      }
      case "answer":
      case "candidate":
        if (this.call) {
          await this.call.handle(msg);
        }
        return;
      case "CHATMSG":
        if (typeof msg.value === "string") {
          emit(this, "chat", { text: msg.value });
        }
        return;
      case "ERROR":
        console.warn("rtcserver error:", msg.code, msg.message);
        emit(this, "servererror", { code: String(msg.code || ""), message: String(msg.message || "") });
        return;
      default:
        emit(this, "unhandled", msg);
    }
  }

  /**
   * The room is full only because an away member holds a seat (a closed tab's short
   * reload grace, or a lost socket's resume grace): wait, and enter the moment it
   * frees (WRONGROOM's `retry`, docs/PROTOCOL.md "Rooms"). Not an error.
   */
  _waitForSeat(seconds) {
    emit(this, "waitingforseat", { seconds });
    clearTimeout(this._seatTimer);
    this._seatTimer = setTimeout(() => {
      if (!this.finished && !this.peerPresent) {
        this.channel.send({ type: "ENTERROOM", value: this.room, roster: true });
      }
    }, seconds * 1000);
  }

  async _startCall(asCaller) {
    const epoch = this._epoch;
    this._endCall();
    const results = await Promise.all([this.localMedia, this.session.rtcConfig()]);
    if (this.finished || epoch !== this._epoch || !this.peerPresent) {
      return null; // WRONGROOM, a hang-up or a change of peer while we waited
    }
    const call = new PeerCall({
      rtcConfig: results[1],
      localStream: results[0],
      send: (msg) => this.channel.send(msg),
      dataChannel: CONTROL_LABEL,
      sendSlots: true,
    });
    call.addEventListener("datachannel", (event) => {
      if (this.call !== call) {
        return;
      }
      const channel = event.detail;
      if (channel === call.dc) {
        this._useControl(call, channel);
      } else {
        emit(this, "datachannel", channel);
      }
    });
    call.addEventListener("remotestream", (event) => {
      if (this.call === call) {
        emit(this, "remotestream", event.detail);
      }
    });
    call.addEventListener("statechange", (event) => {
      if (this.call === call) {
        emit(this, "callstate", event.detail);
        if (!this.reconnecting) {
          this._restartIceIfNeeded().catch((err) => console.warn("rtclib: ICE restart failed", err));
        }
      }
    });
    this.call = call;
    this._asCaller = asCaller;
    emit(this, "call", call);
    emit(this, "calling", { caller: asCaller });
    if (asCaller) {
      await call.call();
    }
    return call;
  }

  _useControl(call, channel) {
    channel.onopen = () => {
      if (this.call === call) {
        emit(this, "controlopen");
      }
    };
    channel.onclose = () => {
      if (this.call === call) {
        emit(this, "controlclosed");
      }
    };
    channel.onmessage = (event) => {
      if (this.call !== call || typeof event.data !== "string") {
        return;
      }
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch (_err) {
        console.warn("rtclib: dropping a control message that is not JSON");
        return;
      }
      if (msg && typeof msg === "object" && typeof msg.type === "string") {
        emit(this, "control", msg);
      }
    };
    if (channel.readyState === "open") {
      emit(this, "controlopen");
    }
  }

  _endCall() {
    const call = this.call;
    if (call) {
      this.call = null;
      call.close();
    }
  }

  _onChannelClosed(detail) {
    if (!this.finished && this.resumable && !this.reconnecting && !finalClose(detail)) {
      // The call's media does not need the server: keep it while we reconnect.
      this._reconnect().catch((err) => console.error("rtclib: reconnection failed", err));
      return;
    }
    if (this.reconnecting) {
      return; // one of the reconnection's own attempts failed: it carries on
    }
    this._endCall();
    if (!this.finished) {
      this.finished = true;
      this.peerPresent = false;
      emit(this, "disconnected", detail);
    }
  }
}

export { RoomClient };
