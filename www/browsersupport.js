/*
 * browsersupport.js: does this browser have what a call needs, and the few
 * entry points to it (getUserMedia, RTCPeerConnection) the pages use.
 * (It was adapter.js; that name belongs to the webrtc-adapter shim, which
 * this is not: it polyfills nothing.)
 *
 * Current Chrome and Firefox both ship the standard, unprefixed APIs
 * (navigator.mediaDevices.getUserMedia, RTCPeerConnection, promise-based
 * offer/answer), so this file adapts by *detecting* them rather than by
 * polyfilling old prefixed ones. Pages call check() once and show
 * its message when something is missing, instead of failing later with an
 * obscure TypeError.
 *
 * Exports check, getUserMedia, createPeerConnection, describeMediaError.
 */
const PeerConnection = window.RTCPeerConnection || null;

/**
 * Feature detection. Returns {ok, media, rtc, websocket, problems[], message}.
 * `media` is false on insecure origins too: browsers hide mediaDevices
 * outside https:// and http://localhost, which is the usual surprise.
 */
function check() {
  const problems = [];
  const rtc = typeof PeerConnection === "function";
  const websocket = typeof window.WebSocket === "function";
  const media = !!navigator.mediaDevices?.getUserMedia;
  if (!rtc) {
    problems.push("this browser has no RTCPeerConnection (WebRTC is unsupported or disabled)");
  }
  if (!websocket) {
    problems.push("this browser has no WebSocket support");
  }
  if (!media) {
    problems.push(
      window.isSecureContext === false
        ? "camera and microphone need a secure page (https:// or localhost)"
        : "this browser cannot access a camera or microphone",
    );
  }
  return {
    ok: rtc && websocket,
    media: media,
    rtc: rtc,
    websocket: websocket,
    problems: problems,
    message: problems.length ? `Sorry: ${problems.join("; ")}.` : "",
  };
}

/** Promise of a MediaStream; rejects with a DOMException (see describeMediaError). */
function getUserMedia(constraints) {
  if (!navigator.mediaDevices?.getUserMedia) {
    const err = new Error("getUserMedia is not available");
    err.name = "NotSupportedError";
    return Promise.reject(err);
  }
  return navigator.mediaDevices.getUserMedia(constraints);
}

function createPeerConnection(config) {
  if (!PeerConnection) {
    throw new Error("RTCPeerConnection is not supported by this browser");
  }
  return new PeerConnection(config);
}

/** A sentence a person can act on, for a getUserMedia failure. */
function describeMediaError(err) {
  const name = err?.name || "";
  switch (name) {
    case "NotAllowedError":
    case "PermissionDeniedError":
    case "SecurityError":
      return "Camera and microphone access was denied.";
    case "NotFoundError":
    case "DevicesNotFoundError":
    case "OverconstrainedError":
      return "No camera or microphone was found.";
    case "NotReadableError":
    case "TrackStartError":
    case "AbortError":
      return "The camera or microphone is in use by another application.";
    case "NotSupportedError":
      return "This browser cannot access a camera or microphone here.";
    default:
      return `The camera and microphone could not be started${name ? ` (${name}).` : "."}`;
  }
}

export { check, getUserMedia, createPeerConnection, describeMediaError };
