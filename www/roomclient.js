/*
 * roomclient.js: RoomClient, the room protocol of the video-call page
 * (index.html): GETROOM / ENTERROOM, PEERJOINED / PEERLEFT / WRONGROOM,
 * chat (CHATMSG), ERROR, on top of rtclib.js's SignalingChannel,
 * openSignaling and PeerCall. Adds RtcLib.RoomClient. Needs rtclib.js first.
 */
(function () {
  "use strict";

  var SignalingChannel = RtcLib.SignalingChannel;
  var PeerCall = RtcLib.PeerCall;
  var AuthError = RtcLib.AuthError;
  var openSignaling = RtcLib.openSignaling;

  function emit(target, type, detail) {
    target.dispatchEvent(new CustomEvent(type, { detail: detail }));
  }

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
   *             giving a Promise of {name, password}, for password mode)}
   * start() rejects with an AuthError when the server refuses the sign-in.
   * Properties: room, peerPresent, call (PeerCall or null), pc (its
   *   RTCPeerConnection or null: tests read window.rtc.pc).
   * Events: "room" {room}, "wrongroom" {reason}, "peerjoined", "peerleft",
   *   "calling", "remotestream" (MediaStream), "callstate" (connectionState),
   *   "chat" {text}, "servererror" {code, message}, "disconnected" {code, reason},
   *   "unhandled" (any other message, for pages that extend the protocol).
   */
  class RoomClient extends EventTarget {
    constructor(options) {
      super();
      this.room = options.room == null ? null : options.room;
      this.joining = this.room !== null;
      this.signalingUrl = options.signalingUrl || RtcLib.signalingUrl();
      this.configUrl = options.configUrl || RtcLib.configUrl();
      this.forceRelay = !!options.forceRelay;
      this.localMedia = Promise.resolve(options.localMedia || null);
      this.token = options.token || null;
      this.credentials = options.credentials || function () {
        return Promise.reject(new AuthError("auth-required", "this server asks for a name and password"));
      };
      this.channel = new SignalingChannel(this.signalingUrl);
      this.session = null; // from openSignaling: auth mode, name, rtcConfig()
      this.call = null;
      this.peerPresent = false;
      this.finished = false; // after WRONGROOM, hang-up or a lost server
      this._inbox = Promise.resolve();
      this._epoch = 0; // bumped whenever the peer changes, to drop stale work
    }

    get pc() {
      return this.call ? this.call.pc : null;
    }

    /** Connect and enter (or create) the room. */
    async start() {
      var self = this;
      this.channel.addEventListener("message", function (event) {
        // One message at a time, in order: an offer is fully applied before
        // the candidates that follow it.
        self._inbox = self._inbox
          .then(function () { return self._dispatch(event.detail); })
          .catch(function (err) { console.error("rtclib: failed to handle", event.detail, err); });
      });
      this.channel.addEventListener("close", function (event) {
        self._inbox = self._inbox.then(function () { self._onChannelClosed(event.detail); });
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
      if (this.joining) {
        this.channel.send({ type: "ENTERROOM", value: this.room });
        // A room exists only while someone is in it, so a successful entry
        // means a peer is there; WRONGROOM takes this back.
        this.peerPresent = true;
        emit(this, "room", { room: this.room });
        // Not queued behind the inbox: a WRONGROOM arriving while the camera
        // starts must be seen at once (it cancels the offer).
        this._startCall(true).catch(function (err) {
          console.error("rtclib: could not start the call", err);
        });
      } else {
        this.channel.send({ type: "GETROOM", value: "" });
      }
    }

    /** Send a chat line to the peer (through the server). */
    sendChat(text) {
      return this.channel.send({ type: "CHATMSG", value: String(text) });
    }

    /** Leave: end the call and the connection (the server tells the peer). */
    hangUp() {
      this.finished = true;
      this._endCall();
      this.channel.close(1000, "hang up");
    }

    async _dispatch(msg) {
      if (this.finished) {
        return;
      }
      // Server messages that arrive outside the state they answer are ignored: the
      // server refuses to relay its own types, and the page does not trust them either.
      switch (msg.type) {
        case "GETROOM": {
          if (this.joining || this.room !== null) {
            return; // we never asked for a room
          }
          var room = roomFromMessage(msg.value);
          if (room === null) {
            emit(this, "servererror", { code: "bad-room", message: "the server sent an unusable room number" });
            return;
          }
          this.room = room;
          emit(this, "room", { room: room });
          return;
        }
        case "WRONGROOM":
          if (!this.joining) {
            return; // only an ENTERROOM is answered with WRONGROOM
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
        case "offer":
          // Each offer is a new call: this page never renegotiates.
          this.peerPresent = true;
          var answering = await this._startCall(false);
          if (answering) {
            await answering.handle(msg);
          }
          return;
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

    async _startCall(asCaller) {
      var epoch = this._epoch;
      this._endCall();
      var results = await Promise.all([this.localMedia, this.session.rtcConfig()]);
      if (this.finished || epoch !== this._epoch || !this.peerPresent) {
        return null; // WRONGROOM, a hang-up or a change of peer while we waited
      }
      var self = this;
      var call = new PeerCall({
        rtcConfig: results[1],
        localStream: results[0],
        send: function (msg) { return self.channel.send(msg); },
      });
      call.addEventListener("remotestream", function (event) {
        if (self.call === call) {
          emit(self, "remotestream", event.detail);
        }
      });
      call.addEventListener("statechange", function (event) {
        if (self.call === call) {
          emit(self, "callstate", event.detail);
        }
      });
      this.call = call;
      emit(this, "calling", { caller: asCaller });
      if (asCaller) {
        await call.call();
      }
      return call;
    }

    _endCall() {
      var call = this.call;
      if (call) {
        this.call = null;
        call.close();
      }
    }

    _onChannelClosed(detail) {
      this._endCall();
      if (!this.finished) {
        this.finished = true;
        this.peerPresent = false;
        emit(this, "disconnected", detail);
      }
    }
  }

  RtcLib.RoomClient = RoomClient;
})();
