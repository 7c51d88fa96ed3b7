/*
 * adapter.js: the small layer between the pages and the browser's WebRTC APIs.
 *
 * Current Chrome and Firefox both ship the standard, unprefixed APIs
 * (navigator.mediaDevices.getUserMedia, RTCPeerConnection, promise-based
 * offer/answer), so this file adapts by *detecting* them rather than by
 * polyfilling old prefixed ones. Pages call RtcAdapter.check() once and show
 * its message when something is missing, instead of failing later with an
 * obscure TypeError.
 *
 * Exposes window.RtcAdapter = { check, getUserMedia, createPeerConnection,
 * describeMediaError }.
 */
(function () {
  "use strict";

  var PeerConnection = window.RTCPeerConnection || null;

  /**
   * Feature detection. Returns {ok, media, rtc, websocket, problems[], message}.
   * `media` is false on insecure origins too: browsers hide mediaDevices
   * outside https:// and http://localhost, which is the usual surprise.
   */
  function check() {
    var problems = [];
    var rtc = typeof PeerConnection === "function";
    var websocket = typeof window.WebSocket === "function";
    var media = !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
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
          : "this browser cannot access a camera or microphone"
      );
    }
    return {
      ok: rtc && websocket,
      media: media,
      rtc: rtc,
      websocket: websocket,
      problems: problems,
      message: problems.length ? "Sorry: " + problems.join("; ") + "." : "",
    };
  }

  /** Promise of a MediaStream; rejects with a DOMException (see describeMediaError). */
  function getUserMedia(constraints) {
    if (!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)) {
      var err = new Error("getUserMedia is not available");
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
    var name = (err && err.name) || "";
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
        return "The camera and microphone could not be started" + (name ? " (" + name + ")." : ".");
    }
  }

  window.RtcAdapter = {
    check: check,
    getUserMedia: getUserMedia,
    createPeerConnection: createPeerConnection,
    describeMediaError: describeMediaError,
  };
})();
