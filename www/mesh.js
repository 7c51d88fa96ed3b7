import {
  AuthError,
  SignalingChannel,
  backoff,
  candidateAllowed,
  configUrl,
  emit,
  filterSdp,
  finalClose,
  openSignaling,
  reconnect,
  resumeSession,
  signalingUrl,
  sleep,
  storeSession,
  storedSession,
} from "./rtclib.js";

/*
 * mesh.js: MeshClient, a multi-party room (docs/PROTOCOL.md, "Multi-party
 * rooms") as a full mesh: one RTCPeerConnection per pair of members, each
 * negotiated with MDN's "perfect negotiation" pattern. The newcomer is the
 * polite side of every pair it makes by entering, so when both sides offer at
 * once (glare) the polite one rolls back and answers, and no pair can wedge.
 *
 * Signaling goes through the server with "to": the member id of the peer
 * (offer, answer, candidate: the book's shapes); the server adds "from".
 * CHATMSG (no "to") reaches everyone. "media-state" {audio, video} is sent
 * to everyone on each change, and to each newcomer.
 *
 * Each connection of a pair is named: offer, answer and candidate carry
 * "pc" (a random tag of the sender's RTCPeerConnection) and "peer" (the tag
 * of the receiver's, once known). A message for a connection of ours that is
 * gone is dropped; one from a new connection of the peer (it reloaded the
 * page) replaces ours with a new one. So a refresh that resumes the session
 * renegotiates with everyone, and nothing left over from the old page's
 * connections (replayed to it after RESUMED) reaches the new ones.
 *
 * A lost signaling socket is reconnected with backoff and RESUMEd (the media
 * does not need the server meanwhile); a refused RESUME re-enters the room as a
 * newcomer. The session is kept in sessionStorage for a refresh.
 */

const SESSION_KEY = "rtcserver.conference";
const RESUME_MS = 10000;
// Reconnection tries (with rtclib.js's backoff) for at most GIVE_UP_MS; a room still
// full of our own away session is tried again meanwhile.
const GIVE_UP_MS = 120000;
// The messages that belong to one RTCPeerConnection of a pair (tagged, see above).
const SIGNALS = new Set(["offer", "answer", "candidate"]);

function randomTag() {
  const bytes = new Uint8Array(9);
  crypto.getRandomValues(bytes);
  return btoa(String.fromCharCode(...bytes));
}

const CANDIDATE_FILTER = () => {
  const filter = window.RTCSERVER_CANDIDATE_FILTER;
  return Array.isArray(filter) ? filter.map((a) => String(a).toLowerCase()) : null;
};

/** One other member and our connection to it. */
class MeshPeer {
  constructor(client, id, name, polite) {
    this.client = client;
    this.id = id;
    this.name = name;
    this.polite = polite;
    this.stream = new MediaStream();
    this.media = { audio: true, video: true }; // what the peer says it sends
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.pc = null;
    this.dc = null; // the data channel, with the client's dataChannel option
    this.tag = randomTag(); // names our RTCPeerConnection to the peer
    this.remoteTag = null; // the peer's, from its first message
    this.away = false; // its signaling socket is lost (PEERAWAY with its id)
    // We entered the room it was in (or it reloaded and offered): it makes the first
    // offer and we only answer until then. Chromium rolling back an offer of ours whose
    // candidates are being gathered (glare) may gather none: the pair stays "new".
    this.awaitsOffer = false;
    // Messages wait until the connection exists (the camera may still be starting).
    this._inbox = new Promise((resolve) => {
      this._opened = resolve;
    });
  }

  async open(rtcConfig, localStream) {
    const pc = new RTCPeerConnection(rtcConfig);
    this.pc = pc;
    pc.ontrack = (event) => {
      this.stream.addTrack(event.track);
      emit(this.client, "peertrack", { peer: this });
    };
    pc.onicecandidate = ({ candidate }) => {
      if (candidate && !candidateAllowed(candidate.candidate, CANDIDATE_FILTER())) {
        return;
      }
      this._send({
        type: "candidate",
        label: candidate ? candidate.sdpMLineIndex : null,
        id: candidate ? candidate.sdpMid : null,
        candidate: candidate ? candidate.candidate : null,
      });
    };
    pc.onnegotiationneeded = async () => {
      if (this.awaitsOffer && !pc.remoteDescription) {
        // A newcomer waits for the first offer: each member it joined got PEERJOINED
        // and offers at once. Two first offers (glare) would mean a rollback, after
        // which Chromium was seen never to gather candidates again (no connection).
        // Back in "stable" after its answer, negotiationneeded fires again if needed.
        return;
      }
      try {
        this.makingOffer = true;
        await pc.setLocalDescription();
        this._send({
          type: pc.localDescription.type,
          sdp: filterSdp(pc.localDescription.sdp, CANDIDATE_FILTER()),
        });
      } catch (err) {
        console.warn("mesh: offer failed", err);
      } finally {
        this.makingOffer = false;
      }
    };
    pc.onconnectionstatechange = () => {
      emit(this.client, "peerstate", { peer: this });
      this.restartIceIfNeeded();
    };
    if (this.client.dataChannel) {
      // Negotiated (same id on both sides): neither side waits for the other's channel.
      this._useDataChannel(pc.createDataChannel(this.client.dataChannel, { negotiated: true, id: 0 }));
    }
    if (localStream) {
      for (const track of localStream.getTracks()) {
        pc.addTrack(track, localStream);
      }
    } else {
      pc.addTransceiver("audio", { direction: "recvonly" });
      pc.addTransceiver("video", { direction: "recvonly" });
    }
    this._opened();
  }

  /** JSON objects from the peer over the data channel become "peermessage" {peer, message}. */
  _useDataChannel(channel) {
    this.dc = channel;
    channel.onopen = () => emit(this.client, "peerchannel", { peer: this });
    channel.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (_err) {
        console.warn("mesh: dropping a data-channel message that is not JSON");
        return;
      }
      if (message && typeof message === "object" && this.client.peers.get(this.id)?.dc === channel) {
        emit(this.client, "peermessage", { peer: this, message: message });
      }
    };
  }

  /** Send an object to this peer over the data channel; false when it is not open. */
  sendData(message) {
    if (this.dc?.readyState !== "open") {
      return false;
    }
    this.dc.send(JSON.stringify(message));
    return true;
  }

  /** Messages from this peer, one at a time, in order. */
  handle(msg) {
    this._inbox = this._inbox
      .then(() => this._handle(msg))
      .catch((err) => console.warn("mesh: signaling", err));
    return this._inbox;
  }

  async _handle(msg) {
    const pc = this.pc;
    if (!pc || pc.signalingState === "closed") {
      return;
    }
    if (msg.type === "offer" || msg.type === "answer") {
      const collision = msg.type === "offer" && (this.makingOffer || pc.signalingState !== "stable");
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) {
        return;
      }
      await pc.setRemoteDescription({ type: msg.type, sdp: String(msg.sdp) }); // rolls back on glare
      if (msg.type === "offer") {
        await pc.setLocalDescription();
        this._send({ type: "answer", sdp: filterSdp(pc.localDescription.sdp, CANDIDATE_FILTER()) });
      }
    } else if (msg.type === "candidate") {
      if (msg.candidate && !candidateAllowed(msg.candidate, CANDIDATE_FILTER())) {
        return;
      }
      const init = msg.candidate
        ? { candidate: msg.candidate, sdpMLineIndex: msg.label, sdpMid: msg.id }
        : null;
      try {
        await pc.addIceCandidate(init);
      } catch (err) {
        if (!this.ignoreOffer) {
          throw err;
        }
      }
    } else if (msg.type === "media-state") {
      this.media = { audio: msg.audio !== false, video: msg.video !== false };
      emit(this.client, "peermedia", { peer: this });
    }
  }

  /**
   * An ICE restart when the connection went disconnected or failed: by the impolite
   * side only (no glare), and only while the server can carry the offer (else on
   * RESUMED). restartIce() makes negotiationneeded send the new offer.
   */
  restartIceIfNeeded() {
    const pc = this.pc;
    if (!pc || this.polite || !this.client.channel.isOpen || this.client.reconnecting) {
      return;
    }
    if (pc.connectionState === "disconnected" || pc.connectionState === "failed") {
      pc.restartIce();
    }
  }

  _send(msg) {
    msg.to = this.id;
    msg.pc = this.tag;
    msg.peer = this.remoteTag;
    this.client.channel.send(msg);
  }

  close() {
    this._opened();
    if (this.dc) {
      this.dc.onmessage = null;
      this.dc.close();
    }
    if (this.pc) {
      this.pc.onconnectionstatechange = null;
      this.pc.onnegotiationneeded = null;
      this.pc.close();
    }
    for (const track of this.stream.getTracks()) {
      track.stop();
    }
  }
}

/**
 * options: {room (number or null: create one), capacity (for a new room),
 *   localMedia (Promise of MediaStream or null), token, credentials, name,
 *   signalingUrl, configUrl (default: beside the page), forceRelay,
 *   dataChannel (a label: every pair also has a negotiated RTCDataChannel of that
 *     name, peer.dc; its JSON objects arrive as "peermessage" {peer, message})}
 * Events: "room" {room, id, capacity}, "wrongroom" {reason}, "peerjoined" {peer},
 *   "peerleft" {peer}, "peertrack" {peer}, "peerstate" {peer}, "peermedia" {peer},
 *   "peerreset" {peer} (a new connection with that member: its stream is new),
 *   "away" (a member's socket was lost or is back: read peer.away, and awayUnknown
 *     for PEERAWAYs that name nobody), "reconnecting", "reconnected" {resumed},
 *   "roomgone" {reason} (reconnected, but the room no longer exists),
 *   "chat" {text, peer}, "servererror" {code, message}, "disconnected" {code, reason},
 *   "tworoom" {room} (the link leads to a room of two: the caller uses the call page),
 *   "peerchannel" {peer} (its data channel opened), "peermessage" {peer, message}.
 * Properties: room, id, peers (Map id -> MeshPeer), reconnecting, awayUnknown.
 */
class MeshClient extends EventTarget {
  constructor(options) {
    super();
    this.room = options.room == null ? null : options.room;
    this.capacity = options.capacity || 8;
    this.localMedia = Promise.resolve(options.localMedia || null);
    this.token = options.token || null;
    this.credentials =
      options.credentials ||
      (() => Promise.reject(new AuthError("auth-required", "this server asks for a name and password")));
    this.name = options.name || null;
    this.configUrl = options.configUrl || configUrl();
    this.forceRelay = !!options.forceRelay;
    this.dataChannel = options.dataChannel || null;
    this.channel = new SignalingChannel(options.signalingUrl || signalingUrl());
    this.session = null;
    this.id = null;
    this.peers = new Map();
    this.finished = false;
    this.localState = { audio: true, video: true };
    this._inbox = Promise.resolve();
    this.resumable = null; // {session, secret} once the server granted a session
    this.reconnecting = false;
    this.awayUnknown = 0; // members away whose PEERAWAY did not say who
    this._entryWaiter = null; // the re-entry waiting for its ROOM or WRONGROOM
  }

  async start() {
    this.channel.addEventListener("message", (event) => {
      this._inbox = this._inbox
        .then(() => this._dispatch(event.detail))
        .catch((err) => console.error("mesh:", err));
    });
    this.channel.addEventListener("close", (event) => this._onChannelClosed(event.detail));
    try {
      this.session = await openSignaling(this.channel, {
        configUrl: this.configUrl,
        token: this.token,
        credentials: this.credentials,
        forceRelay: this.forceRelay,
      });
    } catch (err) {
      this.finished = true;
      this.channel.close(1000, "sign-in failed");
      throw err;
    }
    if (this.finished) {
      return;
    }
    window.addEventListener("pagehide", () => this._remember());
    const stored = storedSession(SESSION_KEY);
    storeSession(SESSION_KEY, null); // spent by the RESUME below, or stale
    if (stored && this.room !== null && stored.room === this.room && typeof stored.id === "string") {
      // A refresh within the grace: the same session, the same room and member id.
      this.channel.received = Number(stored.received) || 0;
      const reply = await resumeSession(this.channel, stored, RESUME_MS);
      if (reply?.type === "RESUMED" && reply.room === this.room) {
        this._resumedAfterRefresh(reply, stored);
        return;
      }
    }
    this.channel.send({ type: "SESSION" });
    if (this.name) {
      // Best effort: a refused name (taken, invalid) leaves us a guest.
      await this.channel.request({ type: "LOGIN", name: this.name }, ["LOGIN"], 10000).catch(() => null);
    }
    if (this.room === null) {
      this.channel.send({ type: "GETROOM", value: "", capacity: this.capacity, roster: true });
    } else {
      this.channel.send({ type: "ENTERROOM", value: this.room, roster: true });
    }
  }

  sendChat(text) {
    return this.channel.send({ type: "CHATMSG", value: String(text) });
  }

  /** Tell everyone what we send now (mute, camera off). */
  setMediaState(audio, video) {
    this.localState = { audio: audio, video: video };
    this.channel.send({ type: "media-state", audio: audio, video: video });
  }

  hangUp() {
    this.finished = true;
    this._closePeers();
    storeSession(SESSION_KEY, null);
    this.channel.close(1000, "hang up");
  }

  /** Keep the session for a refresh (on pagehide): what a new page needs to resume. */
  _remember() {
    if (!this.resumable || this.finished || this.room === null || this.id === null) {
      return;
    }
    storeSession(SESSION_KEY, {
      session: this.resumable.session,
      secret: this.resumable.secret,
      received: this.channel.received,
      room: this.room,
      id: this.id,
      capacity: this.capacity,
      members: [...this.peers.values()].map((peer) => [peer.id, peer.name]),
    });
  }

  /**
   * Back in the room after a refresh: the old page's connections are gone, so a new
   * one with every member (ours are new tags: theirs are replaced, see the top).
   * Members that came or went meanwhile arrive as replayed PEERJOINED / PEERLEFT.
   */
  _resumedAfterRefresh(reply, stored) {
    this.resumable = { session: reply.session, secret: reply.secret };
    this.id = stored.id;
    this.capacity = Number(stored.capacity) || this.capacity;
    emit(this, "room", { room: this.room, id: this.id, capacity: this.capacity });
    const members = Array.isArray(stored.members) ? stored.members : [];
    for (const [id, name] of members) {
      if (typeof id === "string" && !this.peers.has(id)) {
        this._addPeer(id, name, true).catch((err) => console.error("mesh: could not reconnect", err));
      }
    }
    this.channel.send({ type: "media-state", ...this.localState });
  }

  /** The socket was lost: reconnect with backoff, RESUME, else re-enter as a newcomer. */
  async _reconnect() {
    this.reconnecting = true;
    emit(this, "reconnecting");
    const back = await reconnect(
      this.channel,
      {
        finished: () => this.finished,
        resume: () => resumeSession(this.channel, this.resumable, RESUME_MS),
        resumed: (reply) => {
          this.resumable = { session: reply.session, secret: reply.secret };
          this.reconnecting = false;
          emit(this, "reconnected", { resumed: true });
          for (const peer of this.peers.values()) {
            peer.restartIceIfNeeded();
          }
        },
        refused: () => {
          // A newcomer, with a new member id: the others see us join (and our old id
          // leave when its grace ends).
          this._closePeers();
          this.id = null;
        },
        room: () => this.room,
        reenter: (started) => this._reenter(started),
      },
      GIVE_UP_MS,
    );
    if (!back && !this.finished) {
      this.finished = true;
      this.reconnecting = false;
      this.channel.close(1000, "gave up");
      emit(this, "disconnected", { code: 1006, reason: "could not reconnect" });
    }
  }

  /**
   * ENTERROOM again. A room-full answer may be our own away session still holding
   * its place: tried again until it ends. Resolves true when in the room, false when
   * the room is gone, null to try the connection again.
   */
  async _reenter(started) {
    for (let attempt = 0; !this.finished && Date.now() - started < GIVE_UP_MS; attempt++) {
      const reply = await new Promise((resolve) => {
        const timer = setTimeout(() => this._entryWaiter?.(null), RESUME_MS);
        this._entryWaiter = (msg) => {
          clearTimeout(timer);
          this._entryWaiter = null;
          resolve(msg);
        };
        if (!this.channel.send({ type: "ENTERROOM", value: this.room, roster: true })) {
          this._entryWaiter(null);
        }
      });
      if (reply === null || this.finished) {
        return null;
      }
      if (reply.type === "ROOM") {
        this.reconnecting = false;
        emit(this, "reconnected", { resumed: false });
        return true;
      }
      if (reply.reason !== "room-full") {
        this.finished = true;
        this.reconnecting = false;
        this.channel.close(1000, "room gone");
        emit(this, "roomgone", { reason: String(reply.reason || "") });
        return false;
      }
      await sleep(backoff(attempt));
    }
    return null;
  }

  _onChannelClosed(detail) {
    this._entryWaiter?.(null);
    if (!this.finished && this.resumable && !this.reconnecting && !finalClose(detail)) {
      // The mesh's media does not need the server: keep it while we reconnect.
      this._reconnect().catch((err) => console.error("mesh: reconnection failed", err));
      return;
    }
    if (this.reconnecting) {
      return; // one of the reconnection's own attempts failed: it carries on
    }
    if (!this.finished) {
      this.finished = true;
      this._closePeers();
      emit(this, "disconnected", detail);
    }
  }

  async _dispatch(msg) {
    if (this.finished) {
      return;
    }
    switch (msg.type) {
      case "SESSION":
        if (typeof msg.session === "string" && typeof msg.secret === "string") {
          this.resumable = { session: msg.session, secret: msg.secret };
        }
        return;
      case "PEERAWAY":
      case "PEERBACK": {
        const away = msg.type === "PEERAWAY";
        const peer = typeof msg.id === "string" ? this.peers.get(msg.id) : null;
        if (peer) {
          peer.away = away;
        } else {
          // A PEERAWAY that does not say who: counted, shown for the room as a whole.
          this.awayUnknown = Math.max(0, this.awayUnknown + (away ? 1 : -1));
        }
        emit(this, "away", { peer: peer || null });
        return;
      }
      case "GETROOM":
        this.room = msg.value;
        return;
      case "ROOM": {
        if (msg.capacity <= 2) {
          this.finished = true;
          this.channel.close(1000, "a room of two");
          emit(this, "tworoom", { room: msg.value });
          return;
        }
        this.room = msg.value;
        this.id = msg.id;
        this.capacity = Number(msg.capacity) || this.capacity;
        emit(this, "room", { room: msg.value, id: msg.id, capacity: msg.capacity });
        // Also after a server-side outage: back in the room, we are the newcomer
        // to whoever we do not know yet.
        const members = Array.isArray(msg.members) ? msg.members : [];
        const adding = [];
        for (const member of members) {
          if (!this.peers.has(String(member.id))) {
            adding.push(this._addPeer(String(member.id), member.name, true, true)); // we are the newcomer
          }
        }
        this._entryWaiter?.(msg);
        await Promise.all(adding);
        return;
      }
      case "WRONGROOM":
        if (this._entryWaiter) {
          this._entryWaiter(msg); // a re-entry: it decides (room-full is retried)
          return;
        }
        this.finished = true;
        this.channel.close(1000, "wrong room");
        emit(this, "wrongroom", { reason: String(msg.reason || "") });
        return;
      case "PEERJOINED":
        if (typeof msg.id === "string" && !this.peers.has(msg.id)) {
          const peer = await this._addPeer(msg.id, msg.name, false);
          if (this.peers.get(msg.id) === peer) {
            this.channel.send({ type: "media-state", to: msg.id, ...this.localState });
          }
          return peer;
        }
        return;
      case "PEERLEFT": {
        const peer = this.peers.get(msg.id);
        if (peer) {
          this.peers.delete(msg.id);
          peer.close();
          if (this.awayUnknown > 0 && !peer.away) {
            // Most likely the unnamed away member whose grace ended.
            this.awayUnknown -= 1;
            emit(this, "away", { peer: null });
          }
          emit(this, "peerleft", { peer: peer });
        }
        return;
      }
      case "CHATMSG":
        emit(this, "chat", { text: String(msg.value), peer: this.peers.get(msg.from) || null });
        return;
      case "ERROR":
        emit(this, "servererror", { code: String(msg.code || ""), message: String(msg.message || "") });
        return;
      default: {
        let peer = typeof msg.from === "string" ? this.peers.get(msg.from) : null;
        if (peer && SIGNALS.has(msg.type)) {
          if (typeof msg.peer === "string" && msg.peer !== peer.tag) {
            return; // for a connection of ours that is gone (before a refresh)
          }
          if (typeof msg.pc === "string" && peer.remoteTag !== msg.pc) {
            if (peer.remoteTag === null) {
              peer.remoteTag = msg.pc;
            } else {
              peer = this._replacePeer(peer, msg.pc); // the peer has a new connection
            }
          }
        }
        if (peer) {
          peer.handle(msg); // not awaited: one slow peer does not hold up the others
        }
      }
    }
  }

  /** The peer made a new connection (it reloaded its page): ours is replaced by one for it. */
  _replacePeer(old, remoteTag) {
    old.close();
    const peer = new MeshPeer(this, old.id, old.name, false); // the one that reloaded is polite
    peer.remoteTag = remoteTag;
    peer.awaitsOffer = true; // its new connection's offer is on its way
    peer.media = old.media;
    this.peers.set(peer.id, peer);
    emit(this, "peerreset", { peer: peer });
    this.channel.send({ type: "media-state", to: peer.id, ...this.localState });
    Promise.all([this.session.rtcConfig(), this.localMedia])
      .then(([rtcConfig, stream]) => (this.peers.get(peer.id) === peer ? peer.open(rtcConfig, stream) : null))
      .catch((err) => console.error("mesh: could not reconnect to a peer", err));
    return peer;
  }

  async _addPeer(id, name, polite, awaitsOffer = false) {
    const peer = new MeshPeer(this, id, typeof name === "string" ? name : null, polite);
    peer.awaitsOffer = awaitsOffer;
    this.peers.set(id, peer);
    emit(this, "peerjoined", { peer: peer });
    const [rtcConfig, stream] = await Promise.all([this.session.rtcConfig(), this.localMedia]);
    if (this.peers.get(id) === peer) {
      await peer.open(rtcConfig, stream);
    }
    return peer;
  }

  _closePeers() {
    for (const peer of this.peers.values()) {
      peer.close();
      emit(this, "peerleft", { peer: peer });
    }
    this.peers.clear();
  }
}

export { MeshClient, MeshPeer };
