/*
 * sendcontrols.js: the buttons and pickers for what a page sends (an
 * OutgoingMedia, outgoing.js): mute, camera off, share screen, send a video
 * file, the camera and microphone pickers, and the local preview that shows
 * what goes out. Toggle buttons keep their label and flip aria-pressed.
 */
import { isPressed, setPressed, show } from "./ui.js";

/**
 * Wire `outgoing` to the elements in `el` (muteMic, cameraOff, shareScreen,
 * sendVideo, videoFile, fileVideo, localVideo, localCaption, cameraSelect,
 * micSelect). `say(text)` explains a failure; `onChange()` follows every
 * change of what is sent. Returns {enable(stream), disable()}.
 */
export function wireSendControls({ outgoing, el, say, onChange }) {
  const showMediaNotice = say;
  el.muteMic.addEventListener("click", () => {
    const pressed = !isPressed(el.muteMic);
    setPressed(el.muteMic, pressed);
    outgoing.setMicrophoneOn(!pressed);
  });

  el.cameraOff.addEventListener("click", () => {
    const pressed = !isPressed(el.cameraOff);
    setPressed(el.cameraOff, pressed);
    outgoing.setCameraOn(!pressed);
  });

  el.shareScreen.addEventListener("click", () => {
    if (outgoing.source === "screen") {
      outgoing.stopSharing();
      return;
    }
    outgoing.shareScreen().catch((err) => {
      if (err && err.name !== "NotAllowedError") {
        showMediaNotice(`Could not share the screen (${err.name || err}).`);
      }
    });
  });

  el.sendVideo.addEventListener("click", () => {
    if (outgoing.source === "file") {
      outgoing.stopSharing();
    } else {
      el.videoFile.click();
    }
  });

  el.videoFile.addEventListener("change", () => {
    const file = el.videoFile.files[0];
    el.videoFile.value = "";
    if (file) {
      outgoing.shareFile(file, el.fileVideo).catch((err) => {
        showMediaNotice(`Could not play that video (${err?.name || err}).`);
      });
    }
  });

  /** Show what we send, and tell the peer what it gets. */
  outgoing.addEventListener("change", () => {
    const preview = outgoing.preview;
    if (el.localVideo.srcObject !== preview) {
      el.localVideo.srcObject = preview;
    }
    const source = outgoing.source;
    show(el.localVideo, source !== "file");
    show(el.fileVideo, source === "file");
    el.localVideo.classList.toggle("mirrored", source === "camera");
    el.localCaption.textContent = { camera: "You", screen: "Your screen", file: "Your video" }[source];
    setPressed(el.shareScreen, source === "screen");
    setPressed(el.sendVideo, source === "file");
    onChange();
  });

  // --------------------------------------------------------------- devices

  async function listDevices() {
    if (!navigator.mediaDevices?.enumerateDevices) {
      return;
    }
    const devices = await navigator.mediaDevices.enumerateDevices();
    fillDevices(el.cameraSelect, devices, "videoinput", "video");
    fillDevices(el.micSelect, devices, "audioinput", "audio");
  }

  function fillDevices(select, devices, kind, trackKind) {
    const track = outgoing.camera?.getTracks().find((t) => t.kind === trackKind);
    const current = track ? track.getSettings().deviceId : "";
    select.textContent = "";
    devices
      .filter((d) => d.kind === kind && d.deviceId)
      .forEach((d, i) => {
        const option = document.createElement("option");
        option.value = d.deviceId;
        option.textContent = d.label || `${kind === "videoinput" ? "Camera" : "Microphone"} ${i + 1}`;
        option.selected = d.deviceId === current;
        select.appendChild(option);
      });
    select.disabled = select.options.length < 2;
  }

  for (const [select, kind] of [
    [el.cameraSelect, "video"],
    [el.micSelect, "audio"],
  ]) {
    select.addEventListener("change", () => {
      outgoing.useDevice(kind, select.value).catch((err) => {
        showMediaNotice(`Could not switch to that device (${err?.name || err}).`);
        listDevices();
      });
    });
  }

  if (navigator.mediaDevices?.addEventListener) {
    navigator.mediaDevices.addEventListener("devicechange", () => {
      if (outgoing.camera) {
        listDevices();
      }
    });
  }

  return {
    /** The camera and microphone are ready (`stream` may be null: none). */
    enable(stream) {
      el.muteMic.disabled = !stream || stream.getAudioTracks().length === 0;
      el.cameraOff.disabled = !stream || stream.getVideoTracks().length === 0;
      el.shareScreen.disabled = !navigator.mediaDevices?.getDisplayMedia;
      el.sendVideo.disabled = !HTMLMediaElement.prototype.captureStream;
      listDevices();
    },
    disable() {
      for (const control of [el.muteMic, el.cameraOff, el.shareScreen, el.sendVideo]) {
        control.disabled = true;
      }
    },
  };
}
