/*
 * outgoing.js: what this page sends to its peer, and switching it mid-call
 * without renegotiation (RTCRtpSender.replaceTrack):
 *
 *   camera   the camera and microphone (getUserMedia), on the devices picked
 *   screen   a screen, window or tab (getDisplayMedia), with the microphone
 *   file     a local video file playing in a <video>, sent with its own sound
 *            (HTMLMediaElement.captureStream), as in WebRTC Blueprints ch. 3
 *
 * When sharing ends by any means (our button, the browser's own "Stop
 * sharing" bar, which ends the track, or the end of the video file) the
 * camera and microphone are sent again.
 *
 * Events: "change" whenever the source, a device, or a track's enabled state
 * changed (read .source, .preview, .audioOn, .videoOn).
 */
import { getUserMedia } from "./browsersupport.js";
import { stopStream } from "./ui.js";

export class OutgoingMedia extends EventTarget {
  constructor() {
    super();
    this.camera = null; // MediaStream from getUserMedia (or null: none)
    this.source = "camera";
    this.pc = null;
    this._shared = null; // {stream, stop()} while sharing a screen or a file
    this._micOn = true;
    this._camOn = true;
  }

  /** Use this camera and microphone stream (from getUserMedia; may be null). */
  setCamera(stream) {
    this.camera = stream;
    this._changed();
  }

  /** The RTCPeerConnection of the current call (or null): its senders get our tracks. */
  async setCall(pc) {
    this.pc = pc;
    await this._apply();
  }

  get sharing() {
    return this._shared !== null;
  }

  /** What the local preview shows: the camera, or the shared screen. */
  get preview() {
    return this.source === "screen" ? this._shared.stream : this.camera;
  }

  /** Whether the peer hears something: the microphone, unless muted; a video file's sound. */
  get audioOn() {
    return this._micOn || this.source === "file";
  }

  get videoOn() {
    return this._camOn || this.source !== "camera";
  }

  /** The track of `kind` we send now (or null). */
  track(kind) {
    const shared = this._shared?.stream;
    const own = shared?.getTracks().find((t) => t.kind === kind && t.readyState === "live");
    if (own) {
      return own;
    }
    const camera = this.camera?.getTracks().find((t) => t.kind === kind);
    return camera || null;
  }

  setMicrophoneOn(on) {
    this._micOn = on;
    this._enable();
  }

  setCameraOn(on) {
    this._camOn = on;
    this._enable();
  }

  /** Switch the camera (kind "video") or microphone ("audio") to another device, mid-call too. */
  async useDevice(kind, deviceId) {
    const constraints = { audio: false, video: false };
    constraints[kind] = { deviceId: { exact: deviceId } };
    const fresh = await getUserMedia(constraints);
    const track = fresh.getTracks()[0];
    if (!this.camera) {
      this.camera = new MediaStream();
    }
    for (const old of this.camera.getTracks().filter((t) => t.kind === kind)) {
      this.camera.removeTrack(old);
      old.stop();
    }
    this.camera.addTrack(track);
    this._enable();
    await this._apply();
  }

  /** Send a screen, window or tab instead of the camera. Rejects if the person says no. */
  async shareScreen() {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    await this._share("screen", stream, () => stopStream(stream));
  }

  /**
   * Play `file` (a video File) in `video` and send it instead of the camera and
   * microphone. Resolves once it plays; the camera comes back at its end.
   */
  async shareFile(file, video) {
    const url = URL.createObjectURL(file);
    video.src = url;
    video.muted = false;
    const ended = () => this.stopSharing();
    video.addEventListener("ended", ended);
    const stop = () => {
      video.removeEventListener("ended", ended);
      video.pause();
      video.removeAttribute("src");
      video.load();
      URL.revokeObjectURL(url);
    };
    try {
      await video.play();
    } catch (err) {
      stop();
      throw err;
    }
    // Chrome's name is captureStream; Firefox's is mozCaptureStream.
    const capture = video.captureStream ? video.captureStream() : video.mozCaptureStream();
    await this._share("file", capture, stop);
  }

  /** Back to the camera and microphone. */
  async stopSharing() {
    const shared = this._shared;
    if (!shared) {
      return;
    }
    this._shared = null;
    this.source = "camera";
    shared.stop();
    await this._apply();
  }

  /** Stop everything (the page is done with calls). */
  stop() {
    const shared = this._shared;
    this._shared = null;
    if (shared) {
      shared.stop();
    }
    stopStream(this.camera);
    this.source = "camera";
  }

  async _share(source, stream, stop) {
    await this.stopSharing();
    this._shared = { stream, stop };
    this.source = source;
    for (const track of stream.getVideoTracks()) {
      // The browser's own "Stop sharing" bar ends the track: go back to the camera.
      track.addEventListener("ended", () => {
        if (this._shared && this._shared.stream === stream) {
          this.stopSharing();
        }
      });
    }
    this._enable();
    await this._apply();
  }

  _enable() {
    if (this.camera) {
      for (const t of this.camera.getAudioTracks()) {
        t.enabled = this._micOn;
      }
      for (const t of this.camera.getVideoTracks()) {
        t.enabled = this._camOn;
      }
    }
    this._changed();
  }

  /** Put our current tracks on the call's senders (no renegotiation). */
  async _apply() {
    const pc = this.pc;
    if (pc && pc.signalingState !== "closed") {
      for (const kind of ["audio", "video"]) {
        const sender = senderFor(pc, kind);
        const track = this.track(kind);
        if (sender && sender.track !== track) {
          try {
            await sender.replaceTrack(track);
          } catch (err) {
            console.warn(`could not switch the ${kind} track:`, err);
          }
        }
      }
    }
    this._changed();
  }

  _changed() {
    this.dispatchEvent(new Event("change"));
  }
}

/** The sender of `pc` that carries `kind` (audio or video), whether or not it has a track now. */
function senderFor(pc, kind) {
  const transceiver = pc
    .getTransceivers()
    .find((t) => !t.stopped && t.receiver.track && t.receiver.track.kind === kind);
  return transceiver ? transceiver.sender : null;
}
