import {
  AuthError,
  SignalingChannel,
  candidateAllowed,
  configUrl,
  emit,
  filterSdp,
  openSignaling,
  signalingUrl,
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
 */

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
    pc.onconnectionstatechange = () => emit(this.client, "peerstate", { peer: this });
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

  _send(msg) {
    msg.to = this.id;
    this.client.channel.send(msg);
  }

  close() {
    this._opened();
    if (this.pc) {
      this.pc.close();
    }
    for (const track of this.stream.getTracks()) {
      track.stop();
    }
  }
}

/**
 * options: {room (number or null: create one), capacity (for a new room),
 *   localMedia (Promise of MediaStream or null), token, credentials, name}
 * Events: "room" {room, id, capacity}, "wrongroom" {reason}, "peerjoined" {peer},
 *   "peerleft" {peer}, "peertrack" {peer}, "peerstate" {peer}, "peermedia" {peer},
 *   "chat" {text, peer}, "servererror" {code, message}, "disconnected" {code, reason},
 *   "tworoom" {room} (the link leads to a room of two: the caller uses the call page).
 * Properties: room, id, peers (Map id -> MeshPeer).
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
    this.channel = new SignalingChannel(signalingUrl());
    this.session = null;
    this.id = null;
    this.peers = new Map();
    this.finished = false;
    this.localState = { audio: true, video: true };
    this._inbox = Promise.resolve();
  }

  async start() {
    this.channel.addEventListener("message", (event) => {
      this._inbox = this._inbox
        .then(() => this._dispatch(event.detail))
        .catch((err) => console.error("mesh:", err));
    });
    this.channel.addEventListener("close", (event) => {
      if (!this.finished) {
        this.finished = true;
        this._closePeers();
        emit(this, "disconnected", event.detail);
      }
    });
    this.session = await openSignaling(this.channel, {
      configUrl: configUrl(),
      token: this.token,
      credentials: this.credentials,
    });
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
    this.channel.close(1000, "hang up");
  }

  async _dispatch(msg) {
    if (this.finished) {
      return;
    }
    switch (msg.type) {
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
        emit(this, "room", { room: msg.value, id: msg.id, capacity: msg.capacity });
        // Also after a server-side outage: back in the room, we are the newcomer
        // to whoever we do not know yet.
        const members = Array.isArray(msg.members) ? msg.members : [];
        for (const member of members) {
          if (!this.peers.has(String(member.id))) {
            await this._addPeer(String(member.id), member.name, true); // we are the newcomer
          }
        }
        return;
      }
      case "WRONGROOM":
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
        const peer = typeof msg.from === "string" ? this.peers.get(msg.from) : null;
        if (peer) {
          peer.handle(msg); // not awaited: one slow peer does not hold up the others
        }
      }
    }
  }

  async _addPeer(id, name, polite) {
    const peer = new MeshPeer(this, id, typeof name === "string" ? name : null, polite);
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
