import { createPeerConnection } from "./browsersupport.js";

/*
 * rtclib.js: the signaling client (the flow of the book's myrtclib.js),
 * as three small parts that know nothing about any page's DOM:
 *
 *   SignalingChannel  a WebSocket carrying JSON objects, one per text frame.
 *   openSignaling     opens a SignalingChannel the way the server's config.json
 *                     asks (no auth, a ?token=, or AUTH with a password) and says
 *                     where each call's ICE servers come from (config.json, or
 *                     GETCONFIG over the socket when authentication is on).
 *   PeerCall          one RTCPeerConnection: offer/answer/candidates for one call,
 *                     and optionally one RTCDataChannel.
 *
 * Clients built on them live in their own modules: roomclient.js (RoomClient,
 * the room page's protocol) and phonelib.js (PhoneClient, calling people by
 * name). Pages listen to their events and know nothing of the wire.
 *
 * Testing hook: when window.RTCSERVER_CANDIDATE_FILTER is an array of IP
 * addresses, every ICE candidate whose address is not in it is dropped, both
 * the ones we send and the ones we receive (and the a=candidate lines of any
 * SDP). The browser tests set it to ['127.0.0.1'] to keep media on loopback.
 * Unset (production), nothing is filtered.
 */
// ---------------------------------------------------------------- helpers

/** Dispatch a CustomEvent: the one way every client here reports what happened. */
function emit(target, type, detail) {
  target.dispatchEvent(new CustomEvent(type, { detail: detail }));
}

/**
 * The WebSocket URL beside the page: same host:port, wss: when the page is
 * https:, and ?token= when a token is given (the server checks it before the
 * upgrade and answers 401 to a bad one).
 */
function signalingUrl(loc, token) {
  loc = loc || window.location;
  // Resolved relative to the page, so the page also works under a path prefix;
  // for a page served at "/" (or "/phone.html") this is "/ws".
  const url = new URL("ws", loc.href);
  url.protocol = loc.protocol === "https:" ? "wss:" : "ws:";
  url.search = "";
  url.hash = "";
  if (token) {
    url.searchParams.set("token", token);
  }
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
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : null;
}

/**
 * The server's config.json: {iceServers, iceTransportPolicy, auth}. A server
 * without one gives {} (no ICE servers, no authentication), never a rejection.
 */
function loadServerConfig(url) {
  const controller = typeof AbortController === "function" ? new AbortController() : null;
  const timer = controller
    ? setTimeout(() => {
        controller.abort();
      }, 5000)
    : null;
  return fetch(url, { cache: "no-store", signal: controller ? controller.signal : undefined })
    .then((response) => {
      if (!response.ok) {
        throw new Error(`HTTP ${response.status}`);
      }
      return response.json();
    })
    .catch((err) => {
      console.warn(`rtclib: could not load ${url}, using no ICE servers:`, err);
      return {};
    })
    .then((body) => {
      if (timer) {
        clearTimeout(timer);
      }
      return body && typeof body === "object" && !Array.isArray(body) ? body : {};
    });
}

/**
 * An RTCConfiguration from a config.json body or a CONFIG message, with
 * "relay" forced when forceRelay is true (the page's ?relay=1, for operators
 * testing TURN).
 */
function rtcConfigFrom(body, forceRelay) {
  body = body && typeof body === "object" ? body : {};
  const policy = body.iceTransportPolicy === "relay" ? "relay" : "all";
  return {
    iceServers: Array.isArray(body.iceServers) ? body.iceServers : [],
    iceTransportPolicy: forceRelay ? "relay" : policy,
  };
}

/**
 * The RTCConfiguration for the next call from config.json. Fetched per call
 * because TURN credentials are short-lived. A server without config.json
 * still gets a working (host-candidates only) configuration.
 */
function loadRtcConfig(url, forceRelay) {
  return loadServerConfig(url).then((body) => rtcConfigFrom(body, forceRelay));
}

// ------------------------------------------------------ candidate filter

function currentCandidateFilter() {
  const filter = window.RTCSERVER_CANDIDATE_FILTER;
  return Array.isArray(filter) ? filter.map((a) => String(a).toLowerCase()) : null;
}

/** The connection address of an ICE candidate line ("candidate:F C proto prio ADDR port typ ..."). */
function candidateAddress(candidate) {
  const fields = String(candidate).replace(/^a=/, "").trim().split(/\s+/);
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
    .filter((line) => line.indexOf("a=candidate:") !== 0 || candidateAllowed(line, filter))
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
    this._waiters = []; // pending request()s, oldest first
    // Text frames received in this session (docs/PROTOCOL.md, "Sessions and resume"):
    // the SESSION reply is number 1; the count goes on across reconnections.
    this.received = 0;
  }

  /** Connect (again, after a close: same listeners); resolves when open, rejects if the socket closes first. */
  open() {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this.url);
      let opened = false;
      this.socket = socket;
      socket.onopen = () => {
        opened = true;
        resolve();
      };
      socket.onmessage = (event) => {
        if (typeof event.data !== "string" || socket !== this.socket) {
          return;
        }
        this.received++;
        let msg;
        try {
          msg = JSON.parse(event.data);
        } catch (_err) {
          console.warn("rtclib: dropping a frame that is not JSON:", event.data);
          return;
        }
        if (msg && msg.type === "SESSION") {
          this.received = 1;
        }
        if (msg && typeof msg === "object" && !Array.isArray(msg) && !this._answer(msg)) {
          emit(this, "message", msg);
        }
      };
      socket.onclose = (event) => {
        if (socket !== this.socket) {
          return; // an older socket, replaced by a reconnection
        }
        const detail = { code: event.code, reason: event.reason, wasClean: event.wasClean };
        if (!opened) {
          // The URL may carry a token: name the path only.
          reject(new Error(`could not connect to the server (close code ${event.code})`));
        }
        const waiters = this._waiters;
        this._waiters = [];
        waiters.forEach((w) => {
          clearTimeout(w.timer);
          w.reject(new Error(`the connection closed before the ${w.types.join("/")} reply`));
        });
        emit(this, "close", detail);
      };
    });
  }

  /**
   * Send `msg` and resolve with the next message whose type is in
   * `replyTypes` (that message is not emitted as a "message" event). The
   * server answers in order, so concurrent requests get their own replies.
   * Rejects when the socket is not open, closes first, or after timeoutMs.
   */
  request(msg, replyTypes, timeoutMs) {
    return new Promise((resolve, reject) => {
      const waiter = { types: replyTypes, resolve: resolve, reject: reject, timer: null };
      waiter.timer = setTimeout(() => {
        this._waiters = this._waiters.filter((w) => w !== waiter);
        reject(new Error(`no ${replyTypes.join("/")} reply within ${timeoutMs} ms`));
      }, timeoutMs || 10000);
      this._waiters.push(waiter);
      if (!this.send(msg)) {
        clearTimeout(waiter.timer);
        this._waiters = this._waiters.filter((w) => w !== waiter);
        reject(new Error("not connected to the server"));
      }
    });
  }

  /** Hand `msg` to the oldest request() waiting for its type; true if one took it. */
  _answer(msg) {
    for (let i = 0; i < this._waiters.length; i++) {
      const waiter = this._waiters[i];
      if (waiter.types.indexOf(msg.type) !== -1) {
        this._waiters.splice(i, 1);
        clearTimeout(waiter.timer);
        waiter.resolve(msg);
        return true;
      }
    }
    return false;
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

// ---------------------------------------------------------- openSignaling

/** A refused sign-in: `code` is the server's ERROR code (auth-failed, token-expired, ...). */
class AuthError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "AuthError";
    this.code = code;
  }
}

const REQUEST_MS = 10000;

/**
 * Open `channel` the way the server's config.json ("auth") asks:
 *   null        just open it;
 *   "token"     options.token goes on the WebSocket URL as ?token=;
 *   "password"  options.credentials() gives {name, password} (a page asks the
 *               person), then AUTH is the first message.
 * Resolves {auth, name (from the AUTH reply, or null), rtcConfig}, where
 * rtcConfig() gives a fresh RTCConfiguration for each call: from config.json
 * without authentication, else from GETCONFIG over the socket, because then
 * config.json carries no TURN credentials. Rejects with an AuthError when the
 * server refuses the sign-in, or an Error when it cannot be reached.
 *
 * options: {configUrl, token, credentials, forceRelay, resuming (the caller's
 *           first message will be RESUME, which stands for AUTH: no credentials)}
 */
async function openSignaling(channel, options) {
  const server = await loadServerConfig(options.configUrl || configUrl());
  const auth = server.auth === "token" || server.auth === "password" ? server.auth : null;
  const forceRelay = !!options.forceRelay;
  if (auth === "token") {
    if (!options.token) {
      throw new AuthError(
        "token-missing",
        "This server needs a personal link with a sign-in token (?token=…) in it.",
      );
    }
    const url = new URL(channel.url);
    url.searchParams.set("token", options.token);
    channel.url = url.href;
  }
  // Asked before connecting: the server gives a new socket only a few seconds to AUTH.
  // A RESUME stands for AUTH (the session keeps its identity): options.resuming skips it.
  const password = auth === "password" && !options.resuming;
  const credentials = password ? await options.credentials() : null;
  try {
    await channel.open();
  } catch (err) {
    if (auth === "token") {
      // A refused token gets HTTP 401 before the upgrade, which a page cannot read.
      throw new AuthError(
        "token-refused",
        "The server refused this link's sign-in token (it may have expired).",
      );
    }
    throw err;
  }
  let name = null;
  if (password) {
    const reply = await channel.request(
      { type: "AUTH", name: String(credentials.name || ""), password: String(credentials.password || "") },
      ["AUTH", "ERROR"],
      REQUEST_MS,
    );
    if (reply.type !== "AUTH" || reply.success !== true) {
      channel.close(1000, "sign-in refused");
      throw new AuthError(String(reply.code || "auth-failed"), String(reply.message || "sign-in refused"));
    }
    name = typeof reply.name === "string" ? reply.name : null;
  }
  const cfgUrl = options.configUrl || configUrl();
  return {
    auth: auth,
    name: name,
    rtcConfig: () => {
      if (auth === null) {
        return loadRtcConfig(cfgUrl, forceRelay);
      }
      return channel.request({ type: "GETCONFIG" }, ["CONFIG"], REQUEST_MS).then(
        (config) => rtcConfigFrom(config, forceRelay),
        (err) => {
          console.warn("rtclib: no CONFIG from the server, using config.json's ICE servers:", err);
          return rtcConfigFrom(server, forceRelay);
        },
      );
    },
  };
}

/**
 * The unverified `sub` (user name) of a JWT, for pre-filling a name field;
 * null when there is none. Never trusted: the server checks the token.
 */
function tokenName(token) {
  try {
    const payload = String(token).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(decodeURIComponent(escape(atob(payload))));
    return claims && typeof claims.sub === "string" ? claims.sub : null;
  } catch (_err) {
    return null;
  }
}

// --------------------------------------------------------------- PeerCall

/**
 * One call over one RTCPeerConnection (`call.pc`). The page never
 * renegotiates: a call is one offer and one answer, and a new peer means a
 * new PeerCall.
 *
 * options: {rtcConfig, localStream (MediaStream or null), send(msg) -> bool,
 *           candidateFilter (array, default: window.RTCSERVER_CANDIDATE_FILTER),
 *           receive (media kinds to receive as the caller, default
 *             ["audio", "video"]; [] for a data-only call),
 *           dataChannel (a label: the caller opens an RTCDataChannel of
 *             that name before its offer; default none),
 *           sendSlots (true: every audio/video transceiver can send, even
 *             without a local track, so a track can be put in later with
 *             replaceTrack and no renegotiation; default false)}
 * Events:
 *   "remotestream"  detail: MediaStream of the peer's tracks
 *   "statechange"   detail: pc.connectionState
 *   "datachannel"   detail: an RTCDataChannel the peer opened, or ours; the one
 *                   named `dataChannel` (or the first, without a name) is also `call.dc`
 */
class PeerCall extends EventTarget {
  constructor(options) {
    super();
    this.send = options.send;
    this.filter = options.candidateFilter !== undefined ? options.candidateFilter : currentCandidateFilter();
    this.localStream = options.localStream || null;
    this.remoteStream = null;
    this.closed = false;
    this.receive = Array.isArray(options.receive) ? options.receive : ["audio", "video"];
    this.dataChannelLabel = options.dataChannel || null;
    this.sendSlots = !!options.sendSlots;
    this.dc = null;
    this.offerer = false; // true once call() made the offer: only the offerer restarts ICE
    this._pendingCandidates = [];
    this.pc = createPeerConnection(options.rtcConfig);

    if (this.localStream) {
      this.localStream.getTracks().forEach((track) => {
        this.pc.addTrack(track, this.localStream);
      });
    }
    this.pc.onicecandidate = (event) => {
      const c = event.candidate;
      if (!c || this.closed || !candidateAllowed(c.candidate, this.filter)) {
        return;
      }
      this.send({ type: "candidate", label: c.sdpMLineIndex, id: c.sdpMid, candidate: c.candidate });
    };
    this.pc.ontrack = (event) => {
      let stream = event.streams?.[0];
      if (!stream) {
        // A track sent without a stream id: collect such tracks in one stream.
        this.remoteStream = this.remoteStream || new MediaStream();
        this.remoteStream.addTrack(event.track);
        stream = this.remoteStream;
      }
      this.remoteStream = stream;
      emit(this, "remotestream", stream);
    };
    this.pc.onconnectionstatechange = () => {
      emit(this, "statechange", this.pc.connectionState);
    };
    this.pc.ondatachannel = (event) => {
      this._useDataChannel(event.channel);
    };
  }

  /**
   * As the caller: make and send the offer. Receives the `receive` kinds even
   * without local media, and opens the data channel first if asked to.
   */
  async call() {
    this.offerer = true;
    if (this.dataChannelLabel && !this.dc) {
      this._useDataChannel(this.pc.createDataChannel(this.dataChannelLabel));
    }
    this.receive.forEach((kind) => {
      const sending = this.pc.getSenders().some((s) => s.track && s.track.kind === kind);
      if (!sending) {
        this.pc.addTransceiver(kind, { direction: this.sendSlots ? "sendrecv" : "recvonly" });
      }
    });
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    this._sendDescription(offer);
  }

  /** True when the connection has lost its path (disconnected or failed): time for restartIce(). */
  get needsIceRestart() {
    const state = this.pc.connectionState;
    return !this.closed && (state === "disconnected" || state === "failed");
  }

  /**
   * As the offerer: an ICE restart on the same connection, sent as
   * {"type":"offer","sdp":…,"restart":true} (the answerer answers it in place).
   * Only the offerer restarts, so the two sides never offer at once. False (nothing
   * sent) when this side did not make the offer, or an offer is already pending.
   */
  async restartIce() {
    if (this.closed || !this.offerer || this.pc.signalingState !== "stable") {
      return false;
    }
    const offer = await this.pc.createOffer({ iceRestart: true });
    if (this.closed) {
      return false;
    }
    await this.pc.setLocalDescription(offer);
    this.send({ type: "offer", sdp: filterSdp(offer.sdp, this.filter), restart: true });
    return true;
  }

  /** Handle an "offer", "answer" or "candidate" message from the peer. */
  async handle(msg) {
    if (this.closed) {
      return;
    }
    if (msg.type === "answer" && this.pc.signalingState !== "have-local-offer") {
      return; // an answer to an offer of an earlier connection: nothing to apply it to
    }
    if (msg.type === "offer" || msg.type === "answer") {
      await this.pc.setRemoteDescription({ type: msg.type, sdp: filterSdp(msg.sdp, this.filter) });
      await this._flushCandidates();
      if (msg.type === "offer") {
        if (this.sendSlots) {
          this._openSendSlots();
        }
        const answer = await this.pc.createAnswer();
        await this.pc.setLocalDescription(answer);
        this._sendDescription(answer);
      }
    } else if (msg.type === "candidate") {
      if (!candidateAllowed(msg.candidate, this.filter)) {
        return;
      }
      const init = { candidate: msg.candidate, sdpMLineIndex: msg.label, sdpMid: msg.id };
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
    this.pc.ondatachannel = null;
    if (this.dc) {
      this.dc.close();
    }
    this.pc.close();
    emit(this, "statechange", "closed");
  }

  _useDataChannel(channel) {
    if (this.closed) {
      channel.close();
      return;
    }
    const named = this.dataChannelLabel === null || channel.label === this.dataChannelLabel;
    if (named && !this.dc) {
      this.dc = channel;
    }
    emit(this, "datachannel", channel);
  }

  /** As the answerer: let every receive-only audio/video transceiver send too (see sendSlots). */
  _openSendSlots() {
    this.pc.getTransceivers().forEach((t) => {
      if (t.direction === "recvonly" && t.receiver.track && t.receiver.track.kind !== "application") {
        t.direction = "sendrecv";
      }
    });
  }

  _sendDescription(description) {
    // The description straight from createOffer/createAnswer carries no
    // candidates; they follow one by one ("trickle"), each through the filter.
    this.send({ type: description.type, sdp: filterSdp(description.sdp, this.filter) });
  }

  async _flushCandidates() {
    const pending = this._pendingCandidates;
    this._pendingCandidates = [];
    for (let i = 0; i < pending.length; i++) {
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

// ----------------------------------------------------- sessions and resume

// Reconnection (docs/PROTOCOL.md, "What the pages do"): exponential backoff from
// 0.5 s up to 8 s, with jitter.
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 8000;

/** The delay before reconnection attempt `attempt` (0, 1, ...): exponential, jittered. */
/**
 * Close codes by which the server's operator ended this connection (docs/PROTOCOL.md):
 * 4003 the room was closed, 4004 removed from the room, 4005 signed out. They are
 * final: the session is over, so the client does not reconnect, and the close
 * reason is the server's own sentence for the page to show.
 */
const FINAL_CLOSE_CODES = new Set([4003, 4004, 4005]);

/** True when a "close" event's detail is one of FINAL_CLOSE_CODES. */
function finalClose(detail) {
  return Boolean(detail) && FINAL_CLOSE_CODES.has(detail.code);
}

function backoff(attempt) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt);
  return base / 2 + Math.random() * base; // 50% to 150%: pages cut together do not retry together
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The session kept under `key` for a refresh (sessionStorage: this tab only), or null. */
function storedSession(key) {
  try {
    const value = JSON.parse(window.sessionStorage.getItem(key) || "null");
    if (value && typeof value.session === "string" && typeof value.secret === "string") {
      return value;
    }
  } catch (_err) {
    // unreadable: as if none
  }
  return null;
}

/** Keep `value` ({session, secret, ...}) under `key`, or forget it (null). */
function storeSession(key, value) {
  try {
    if (value) {
      window.sessionStorage.setItem(key, JSON.stringify(value));
    } else {
      window.sessionStorage.removeItem(key);
    }
  } catch (_err) {
    // storage refused (private mode): a refresh then re-enters as a newcomer
  }
}

/**
 * RESUME `resumable` ({session, secret}) on the channel's (new) socket, counting
 * from channel.received: the RESUMED or ERROR reply, or null if the socket failed.
 */
async function resumeSession(channel, resumable, timeoutMs) {
  try {
    return await channel.request(
      { type: "RESUME", session: resumable.session, secret: resumable.secret, received: channel.received },
      ["RESUMED", "ERROR"],
      timeoutMs,
    );
  } catch (_err) {
    return null;
  }
}

/**
 * The reconnection loop of the room and conference pages: wait (backoff with jitter),
 * reopen `channel`, RESUME, for at most `giveUpMs`. The page's `hooks`:
 * - finished(): true once the page has hung up (the loop stops);
 * - resume(): the RESUMED or ERROR reply on the new socket, or null (try again);
 * - resumed(reply): the session is back;
 * - refused(): RESUME was refused (the grace ended, a server restart, another node):
 *   drop what the old session had; the page goes on as a newcomer;
 * - room(): the room to re-enter, or null (nothing to go back to: give up);
 * - reenter(started): ENTERROOM again; resolves true when in, false when the room is
 *   gone (the page has said so), null to try the connection again.
 * Resolves true when the page is back (or finished), false when it gave up.
 */
async function reconnect(channel, hooks, giveUpMs) {
  const started = Date.now();
  for (let attempt = 0; Date.now() - started < giveUpMs; attempt++) {
    await sleep(backoff(attempt));
    if (hooks.finished()) {
      return true;
    }
    try {
      await channel.open();
    } catch (_err) {
      continue;
    }
    const reply = await hooks.resume();
    if (reply === null) {
      continue;
    }
    if (reply.type === "RESUMED") {
      hooks.resumed(reply);
      return true;
    }
    hooks.refused();
    if (hooks.room() === null) {
      return false;
    }
    channel.send({ type: "SESSION" }); // ours again (a reload then resumes)
    if ((await hooks.reenter(started)) !== null) {
      return true;
    }
  }
  return hooks.finished();
}

export {
  emit,
  SignalingChannel,
  PeerCall,
  AuthError,
  openSignaling,
  tokenName,
  signalingUrl,
  configUrl,
  loadServerConfig,
  loadRtcConfig,
  rtcConfigFrom,
  parseRoom,
  candidateAddress,
  candidateAllowed,
  filterSdp,
  backoff,
  finalClose,
  sleep,
  storedSession,
  storeSession,
  resumeSession,
  reconnect,
};
