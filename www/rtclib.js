/*
 * rtclib.js: the signaling client (the flow of the book's myrtclib.js),
 * as three small parts that know nothing about any page's DOM:
 *
 *   SignalingChannel  a WebSocket carrying JSON objects, one per text frame.
 *   PeerCall          one RTCPeerConnection: offer/answer/candidates for one call.
 *   RoomClient        the room protocol on top of both: GETROOM / ENTERROOM,
 *                     PEERJOINED / PEERLEFT / WRONGROOM, chat (CHATMSG), ERROR.
 *
 * A page (index.html today, phone.html later) builds a RoomClient, or its own
 * flow from SignalingChannel and PeerCall, and listens to their events.
 * Everything is exposed as window.RtcLib. Needs adapter.js first.
 *
 * Testing hook: when window.RTCSERVER_CANDIDATE_FILTER is an array of IP
 * addresses, every ICE candidate whose address is not in it is dropped, both
 * the ones we send and the ones we receive (and the a=candidate lines of any
 * SDP). The browser tests set it to ['127.0.0.1'] to keep media on loopback.
 * Unset (production), nothing is filtered.
 */
(function () {
  "use strict";

  // ---------------------------------------------------------------- helpers

  function emit(target, type, detail) {
    target.dispatchEvent(new CustomEvent(type, { detail: detail }));
  }

  /** The WebSocket URL beside the page: same host:port, wss: when the page is https:. */
  function signalingUrl(loc) {
    loc = loc || window.location;
    // Resolved relative to the page, so the page also works under a path prefix;
    // for a page served at "/" (or "/phone.html") this is "/ws".
    var url = new URL("ws", loc.href);
    url.protocol = loc.protocol === "https:" ? "wss:" : "ws:";
    url.search = "";
    url.hash = "";
    return url.href;
  }

  /** The config.json URL beside the page. */
  function configUrl(loc) {
    loc = loc || window.location;
    return new URL("config.json", loc.href).href;
  }

  /**
   * A room number from the digits of a ?room= parameter, or null when it is not
   * a safe integer. Only parsed, never computed with, so it stays exact.
   */
  function parseRoom(text) {
    if (typeof text !== "string" || !/^[0-9]{1,16}$/.test(text)) {
      return null;
    }
    var n = Number(text);
    return Number.isSafeInteger(n) ? n : null;
  }

  /** The room number of a GETROOM reply, or null when it is not a safe integer. */
  function roomFromMessage(value) {
    if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) {
      return value;
    }
    return null;
  }

  /**
   * The RTCConfiguration for the next call: iceServers and iceTransportPolicy
   * from the server's config.json, with "relay" forced when forceRelay is true
   * (the page's ?relay=1, for operators testing TURN). Fetched per call because
   * TURN credentials are short-lived. A server without config.json still gets
   * a working (host-candidates only) configuration.
   */
  function loadRtcConfig(url, forceRelay) {
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timer = controller ? setTimeout(function () { controller.abort(); }, 5000) : null;
    return fetch(url, { cache: "no-store", signal: controller ? controller.signal : undefined })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .catch(function (err) {
        console.warn("rtclib: could not load " + url + ", using no ICE servers:", err);
        return {};
      })
      .then(function (body) {
        if (timer) {
          clearTimeout(timer);
        }
        body = body && typeof body === "object" ? body : {};
        var policy = body.iceTransportPolicy === "relay" ? "relay" : "all";
        return {
          iceServers: Array.isArray(body.iceServers) ? body.iceServers : [],
          iceTransportPolicy: forceRelay ? "relay" : policy,
        };
      });
  }

  // ------------------------------------------------------ candidate filter

  function currentCandidateFilter() {
    var filter = window.RTCSERVER_CANDIDATE_FILTER;
    return Array.isArray(filter) ? filter.map(function (a) { return String(a).toLowerCase(); }) : null;
  }

  /** The connection address of an ICE candidate line ("candidate:F C proto prio ADDR port typ ..."). */
  function candidateAddress(candidate) {
    var fields = String(candidate).replace(/^a=/, "").trim().split(/\s+/);
    return fields.length > 4 ? fields[4].toLowerCase() : null;
  }

  function candidateAllowed(candidate, filter) {
    if (!filter || !candidate) {
      return true; // no filter, or an end-of-candidates marker
    }
    return filter.indexOf(candidateAddress(candidate)) !== -1;
  }

  function filterSdp(sdp, filter) {
    if (!filter || typeof sdp !== "string") {
      return sdp;
    }
    return sdp
      .split("\r\n")
      .filter(function (line) {
        return line.indexOf("a=candidate:") !== 0 || candidateAllowed(line, filter);
      })
      .join("\r\n");
  }

  // ------------------------------------------------------- SignalingChannel

  /**
   * A WebSocket that carries JSON objects. Events:
   *   "message"  detail: the decoded object (frames that are not a JSON object are dropped)
   *   "close"    detail: {code, reason, wasClean}
   */
  class SignalingChannel extends EventTarget {
    constructor(url) {
      super();
      this.url = url;
      this.socket = null;
    }

    /** Connect; resolves when open, rejects if the socket closes first. */
    open() {
      var self = this;
      return new Promise(function (resolve, reject) {
        var socket = new WebSocket(self.url);
        var opened = false;
        self.socket = socket;
        socket.onopen = function () {
          opened = true;
          resolve();
        };
        socket.onmessage = function (event) {
          if (typeof event.data !== "string") {
            return;
          }
          var msg;
          try {
            msg = JSON.parse(event.data);
          } catch (err) {
            console.warn("rtclib: dropping a frame that is not JSON:", event.data);
            return;
          }
          if (msg && typeof msg === "object" && !Array.isArray(msg)) {
            emit(self, "message", msg);
          }
        };
        socket.onclose = function (event) {
          var detail = { code: event.code, reason: event.reason, wasClean: event.wasClean };
          if (!opened) {
            reject(new Error("could not connect to " + self.url + " (close code " + event.code + ")"));
          }
          emit(self, "close", detail);
        };
      });
    }

    get isOpen() {
      return !!this.socket && this.socket.readyState === WebSocket.OPEN;
    }

    /** Send one object; false (and nothing sent) when the socket is not open. */
    send(msg) {
      if (!this.isOpen) {
        return false;
      }
      this.socket.send(JSON.stringify(msg));
      return true;
    }

    close(code, reason) {
      if (this.socket && this.socket.readyState < WebSocket.CLOSING) {
        this.socket.close(code || 1000, reason || "");
      }
    }
  }

  // --------------------------------------------------------------- PeerCall

  /**
   * One call over one RTCPeerConnection (`call.pc`). The page never
   * renegotiates: a call is one offer and one answer, and a new peer means a
   * new PeerCall.
   *
   * options: {rtcConfig, localStream (MediaStream or null), send(msg) -> bool,
   *           candidateFilter (array, default: window.RTCSERVER_CANDIDATE_FILTER)}
   * Events:
   *   "remotestream"  detail: MediaStream of the peer's tracks
   *   "statechange"   detail: pc.connectionState
   */
  class PeerCall extends EventTarget {
    constructor(options) {
      super();
      var self = this;
      this.send = options.send;
      this.filter = options.candidateFilter !== undefined ? options.candidateFilter : currentCandidateFilter();
      this.localStream = options.localStream || null;
      this.remoteStream = null;
      this.closed = false;
      this._pendingCandidates = [];
      this.pc = RtcAdapter.createPeerConnection(options.rtcConfig);

      if (this.localStream) {
        this.localStream.getTracks().forEach(function (track) {
          self.pc.addTrack(track, self.localStream);
        });
      }
      this.pc.onicecandidate = function (event) {
        var c = event.candidate;
        if (!c || self.closed || !candidateAllowed(c.candidate, self.filter)) {
          return;
        }
        self.send({ type: "candidate", label: c.sdpMLineIndex, id: c.sdpMid, candidate: c.candidate });
      };
      this.pc.ontrack = function (event) {
        var stream = event.streams && event.streams[0];
        if (!stream) {
          // A track sent without a stream id: collect such tracks in one stream.
          self.remoteStream = self.remoteStream || new MediaStream();
          self.remoteStream.addTrack(event.track);
          stream = self.remoteStream;
        }
        self.remoteStream = stream;
        emit(self, "remotestream", stream);
      };
      this.pc.onconnectionstatechange = function () {
        emit(self, "statechange", self.pc.connectionState);
      };
    }

    /** As the caller: make and send the offer. Receives audio and video even without local media. */
    async call() {
      var self = this;
      ["audio", "video"].forEach(function (kind) {
        var sending = self.pc.getSenders().some(function (s) { return s.track && s.track.kind === kind; });
        if (!sending) {
          self.pc.addTransceiver(kind, { direction: "recvonly" });
        }
      });
      var offer = await this.pc.createOffer();
      await this.pc.setLocalDescription(offer);
      this._sendDescription(offer);
    }

    /** Handle an "offer", "answer" or "candidate" message from the peer. */
    async handle(msg) {
      if (this.closed) {
        return;
      }
      if (msg.type === "offer" || msg.type === "answer") {
        await this.pc.setRemoteDescription({ type: msg.type, sdp: filterSdp(msg.sdp, this.filter) });
        await this._flushCandidates();
        if (msg.type === "offer") {
          var answer = await this.pc.createAnswer();
          await this.pc.setLocalDescription(answer);
          this._sendDescription(answer);
        }
      } else if (msg.type === "candidate") {
        if (!candidateAllowed(msg.candidate, this.filter)) {
          return;
        }
        var init = { candidate: msg.candidate, sdpMLineIndex: msg.label, sdpMid: msg.id };
        if (!this.pc.remoteDescription) {
          this._pendingCandidates.push(init);
        } else {
          await this._addCandidate(init);
        }
      }
    }

    close() {
      if (this.closed) {
        return;
      }
      this.closed = true;
      this.pc.onicecandidate = null;
      this.pc.ontrack = null;
      this.pc.onconnectionstatechange = null;
      this.pc.close();
      emit(this, "statechange", "closed");
    }

    _sendDescription(description) {
      // The description straight from createOffer/createAnswer carries no
      // candidates; they follow one by one ("trickle"), each through the filter.
      this.send({ type: description.type, sdp: filterSdp(description.sdp, this.filter) });
    }

    async _flushCandidates() {
      var pending = this._pendingCandidates;
      this._pendingCandidates = [];
      for (var i = 0; i < pending.length; i++) {
        await this._addCandidate(pending[i]);
      }
    }

    async _addCandidate(init) {
      if (init.sdpMLineIndex == null && init.sdpMid == null) {
        init.sdpMLineIndex = 0;
      }
      try {
        await this.pc.addIceCandidate(init);
      } catch (err) {
        // One bad candidate must not end the call; the others may still work.
        console.warn("rtclib: ignoring a candidate the browser refused:", init.candidate, err);
      }
    }
  }

  // ------------------------------------------------------------- RoomClient

  /**
   * The book's room flow. Without a room number it creates a room (GETROOM)
   * and waits; with one it enters it (ENTERROOM) and, as the newcomer, makes
   * the offer. When the peer leaves, the call is torn down and the client waits
   * in the same room for the next peer, who will make a new offer.
   *
   * options: {room (number or null), signalingUrl, configUrl, forceRelay,
   *           localMedia (Promise of MediaStream or null)}
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
      this.signalingUrl = options.signalingUrl || signalingUrl();
      this.configUrl = options.configUrl || configUrl();
      this.forceRelay = !!options.forceRelay;
      this.localMedia = Promise.resolve(options.localMedia || null);
      this.channel = new SignalingChannel(this.signalingUrl);
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
      await this.channel.open();
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
      switch (msg.type) {
        case "GETROOM": {
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
          this.finished = true;
          this.peerPresent = false;
          this._endCall();
          this.channel.close(1000, "wrong room");
          emit(this, "wrongroom", { reason: typeof msg.reason === "string" ? msg.reason : "" });
          return;
        case "PEERJOINED":
          this._epoch++;
          this._endCall(); // a leftover call from an earlier peer, if any
          this.peerPresent = true;
          emit(this, "peerjoined");
          return;
        case "PEERLEFT":
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
      var results = await Promise.all([this.localMedia, loadRtcConfig(this.configUrl, this.forceRelay)]);
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

  window.RtcLib = {
    SignalingChannel: SignalingChannel,
    PeerCall: PeerCall,
    RoomClient: RoomClient,
    signalingUrl: signalingUrl,
    configUrl: configUrl,
    loadRtcConfig: loadRtcConfig,
    parseRoom: parseRoom,
    candidateAddress: candidateAddress,
    candidateAllowed: candidateAllowed,
    filterSdp: filterSdp,
  };
})();
