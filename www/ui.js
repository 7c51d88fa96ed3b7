/*
 * ui.js: the page parts the room page (app.js) and the phone (phone.js) share:
 * DOM lookups, notices, the chat log, toggle buttons, local media with its
 * fallbacks, playing remote media when the browser's autoplay policy says no,
 * fullscreen and picture-in-picture for the peer's video, and the peer's
 * mute / camera-off / sharing indicators.
 *
 * Text from the network is only ever put in the page with textContent.
 */
import { check, describeMediaError, getUserMedia } from "./browsersupport.js";

export function $(id) {
  return document.getElementById(id);
}

export function show(node, visible) {
  node.hidden = !visible;
}

/** A function that puts `text` in `node` and shows it, or hides it for "". */
export function notice(node) {
  return (text) => {
    node.textContent = text || "";
    show(node, !!text);
  };
}

// ------------------------------------------------------------------ chat

/**
 * The chat log and its form. `send(text)` returns true when the text went out;
 * only then is it added to the log as the person's own line.
 */
export class Chat {
  constructor({ log, form, input, button, send, onNotSent }) {
    this.log = log;
    this.input = input;
    this.button = button;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (!text) {
        return;
      }
      if (send(text)) {
        this.add("You", text, true);
        input.value = "";
      } else if (onNotSent) {
        onNotSent(text);
      }
    });
  }

  add(who, text, mine) {
    const item = document.createElement("li");
    item.className = mine ? "mine" : "theirs";
    const name = document.createElement("strong");
    name.textContent = `${who}: `;
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    item.append(name, body);
    this.log.appendChild(item);
    this.log.scrollTop = this.log.scrollHeight;
  }

  clear() {
    this.log.textContent = "";
  }

  enable(enabled) {
    this.input.disabled = !enabled;
    this.button.disabled = !enabled;
  }
}

// --------------------------------------------------------- toggle buttons

/**
 * A toggle button keeps its label ("Mute mic") and says whether it is on with
 * aria-pressed only: a screen reader then announces "Mute mic, pressed",
 * never a label and a state that contradict each other.
 */
export function isPressed(button) {
  return button.getAttribute("aria-pressed") === "true";
}

export function setPressed(button, pressed) {
  button.setAttribute("aria-pressed", String(!!pressed));
}

/** Flip `button`; the tracks are enabled while it is not pressed. Returns the new pressed state. */
export function toggleTracks(button, tracks) {
  const pressed = !isPressed(button);
  for (const track of tracks) {
    track.enabled = !pressed;
  }
  setPressed(button, pressed);
  return pressed;
}

// ------------------------------------------------------------ local media

const NO_CAMERA = new Set(["NotFoundError", "NotReadableError", "OverconstrainedError"]);

/**
 * The camera and microphone (or only the microphone when `video` is false,
 * or when no camera works), else null. Never rejects: without media a page
 * still chats and receives its peer. `say(text)` explains any shortfall;
 * `without` is what the person can still do ("You can still chat...").
 */
export async function getLocalMedia({ video = true, say, without }) {
  const support = check();
  if (!support.media) {
    say(`${support.problems.join("; ")}. ${without}`);
    return null;
  }
  try {
    return await getUserMedia({ audio: true, video });
  } catch (err) {
    if (video && NO_CAMERA.has(err?.name)) {
      try {
        const stream = await getUserMedia({ audio: true, video: false });
        say("No camera available: you are in the call with sound only.");
        return stream;
      } catch (second) {
        return failed(second);
      }
    }
    return failed(err);
  }

  function failed(err) {
    console.warn("getUserMedia failed:", err);
    say(`${describeMediaError(err)} ${without}`);
    return null;
  }
}

export function stopStream(stream) {
  if (stream) {
    for (const track of stream.getTracks()) {
      track.stop();
    }
  }
}

// ----------------------------------------------------------- remote media

/**
 * Play `stream` in `sink`. When the browser blocks autoplay with sound, play
 * muted and show `unmuteButton`, whose click (see unmuteOnClick) unmutes.
 */
export function playRemote(sink, stream, unmuteButton) {
  if (sink.srcObject !== stream) {
    sink.srcObject = stream;
  }
  sink.play().catch((err) => {
    if (err && err.name === "NotAllowedError") {
      sink.muted = true;
      sink.play().catch(() => {});
      show(unmuteButton, true);
    }
  });
}

export function unmuteOnClick(button, sinks) {
  button.addEventListener("click", () => {
    for (const sink of sinks) {
      sink.muted = false;
      sink.play().catch(() => {});
    }
    show(button, false);
  });
}

/**
 * The Fullscreen (of `figure`, so captions and indicators come along) and
 * Picture-in-picture (of `video`) buttons. Returns {enable(on)}: on while
 * there is a peer's video to show.
 */
export function wireViewer({ figure, video, fullscreen, pip, say }) {
  // In fullscreen the figure covers the page's buttons: it has its own way out
  // (besides Esc), and a double click on the video toggles too.
  const exit = figure.querySelector("#exit-fullscreen");
  const toggle = () => {
    if (document.fullscreenElement) {
      document.exitFullscreen().catch(() => {});
    } else if (!fullscreen.disabled) {
      figure.requestFullscreen().catch(() => {});
    }
  };
  fullscreen.addEventListener("click", toggle);
  video.addEventListener("dblclick", toggle);
  if (exit) {
    exit.addEventListener("click", toggle);
    document.addEventListener("fullscreenchange", () => {
      show(exit, document.fullscreenElement === figure);
    });
  }
  pip.addEventListener("click", () => {
    if (document.pictureInPictureElement) {
      document.exitPictureInPicture().catch(() => {});
    } else {
      video.requestPictureInPicture().catch((err) => {
        say(`Picture in picture is not available (${err?.name || err}).`);
      });
    }
  });
  return {
    enable(on) {
      fullscreen.disabled = !(on && document.fullscreenEnabled);
      pip.disabled = !(on && document.pictureInPictureEnabled);
      if (!on && document.pictureInPictureElement === video) {
        document.exitPictureInPicture().catch(() => {});
      }
    },
  };
}

// ------------------------------------------------------------ peer state

const SOURCE_TEXT = { screen: "Peer is sharing their screen", file: "Peer is sending a video" };

/**
 * The indicators of what the peer sends (a "media-state" control message,
 * docs/PROTOCOL.md "Between the peers"): `muted`, `cameraOff` and `sharing`
 * are elements, shown or hidden. Returns show(state): state null (no peer)
 * hides them all.
 */
export function peerStateView({ muted, cameraOff, sharing }) {
  return (state) => {
    show(muted, !!state && state.audio === false);
    show(cameraOff, !!state && state.video === false);
    const text = state ? SOURCE_TEXT[state.source] : undefined;
    sharing.textContent = text || "";
    show(sharing, !!text);
  };
}
