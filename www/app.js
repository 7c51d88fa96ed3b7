/*
 * app.js: the video-call page (index.html). All protocol work is in rtclib.js;
 * this file turns its events into the status line, videos, buttons and chat.
 *
 *   /            create a room, show its link, wait for a peer
 *   /?room=N     enter room N and call the peer in it
 *   &relay=1     force iceTransportPolicy "relay" (operators testing TURN)
 *   &token=T     a personal sign-in token, for a server in token mode
 *                (config.json "auth":"token"); it goes on the WebSocket URL.
 *                With "auth":"password" the page asks for a name and password.
 *
 * For tests and debugging, window.rtc is the RoomClient (rtclib.js):
 * window.rtc.pc is the current RTCPeerConnection (null between calls) and
 * window.rtc.room the room number.
 *
 * Text from the network is only ever put in the page with textContent.
 */
(function () {
  "use strict";

  function $(id) {
    return document.getElementById(id);
  }

  var el = {
    statusText: $("status-text"),
    share: $("share"),
    shareLink: $("share-link"),
    copyLink: $("copy-link"),
    copyResult: $("copy-result"),
    wrongRoom: $("wrong-room"),
    wrongRoomMessage: $("wrong-room-message"),
    newRoom: $("new-room"),
    ended: $("ended"),
    endedMessage: $("ended-message"),
    rejoin: $("rejoin"),
    endedNewRoom: $("ended-new-room"),
    mediaNotice: $("media-notice"),
    localVideo: $("localVideo"),
    remoteVideo: $("remoteVideo"),
    remoteCaption: $("remote-caption"),
    unmuteRemote: $("unmute-remote"),
    muteMic: $("mute-mic"),
    cameraOff: $("camera-off"),
    hangUp: $("hang-up"),
    chatLog: $("chat-log"),
    chatForm: $("chat-form"),
    chatInput: $("chat-input"),
    chatSend: $("chat-send"),
    serverNote: $("server-note"),
    signIn: $("sign-in"),
    signInForm: $("sign-in-form"),
    signInMessage: $("sign-in-message"),
    signInName: $("sign-in-name"),
    signInPassword: $("sign-in-password"),
  };

  var params = new URLSearchParams(window.location.search);
  var forceRelay = params.get("relay") === "1";
  var token = params.get("token") || null;
  var localStream = null;
  var localMedia = null; // Promise of the MediaStream (or null), started once
  var client = null;
  var pageDone = false; // set once the page will not call again (wrong room, hang-up)

  function setStatus(text) {
    el.statusText.textContent = text;
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  /**
   * The page's address with the given room (and ?relay=1 kept, so both ends
   * test TURN). The sign-in token is kept only when `own` is true, for this
   * person's own navigation (rejoin, new room): a token is personal (it names
   * its holder and may list the rooms they may enter), so the share link never
   * carries it. Whoever opens the link uses their own token.
   */
  function pageUrl(room, own) {
    var url = new URL(window.location.pathname, window.location.href);
    if (room !== null && room !== undefined) {
      url.searchParams.set("room", String(room)); // String() of a safe integer: exact digits
    }
    if (forceRelay) {
      url.searchParams.set("relay", "1");
    }
    if (own && token) {
      url.searchParams.set("token", token);
    }
    return url.href;
  }

  function startNewRoom() {
    window.location.href = pageUrl(null, true);
  }

  // ------------------------------------------------------------ share link

  function showShareLink(room) {
    var link = pageUrl(room);
    el.shareLink.href = link;
    el.shareLink.textContent = link;
    show(el.share, true);
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () {
        return legacyCopy(text);
      });
    }
    return legacyCopy(text);
  }

  function legacyCopy(text) {
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try {
        ok = document.execCommand("copy");
      } catch (err) {
        ok = false;
      }
      document.body.removeChild(area);
      if (ok) {
        resolve();
      } else {
        reject(new Error("copy is not available"));
      }
    });
  }

  el.copyLink.addEventListener("click", function () {
    var link = el.shareLink.href;
    copyText(link).then(
      function () {
        el.copyResult.textContent = "Copied!";
      },
      function () {
        el.copyResult.textContent = "";
        window.prompt("Copy this link:", link);
      }
    );
    setTimeout(function () {
      el.copyResult.textContent = "";
    }, 2500);
  });

  // ------------------------------------------------------------------ chat

  function addChatLine(who, text) {
    var item = document.createElement("li");
    item.className = who === "You" ? "mine" : "theirs";
    var name = document.createElement("strong");
    name.textContent = who + ": ";
    var body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    item.appendChild(name);
    item.appendChild(body);
    el.chatLog.appendChild(item);
    el.chatLog.scrollTop = el.chatLog.scrollHeight;
  }

  function enableChat(enabled) {
    el.chatInput.disabled = !enabled;
    el.chatSend.disabled = !enabled;
  }

  el.chatForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = el.chatInput.value.trim();
    if (!text || !client) {
      return;
    }
    if (client.sendChat(text)) {
      addChatLine("You", text);
      el.chatInput.value = "";
    } else {
      showServerNote("Message not sent: not connected to the server.");
    }
  });

  // ------------------------------------------------------------ local media

  /**
   * Camera and microphone, or just the microphone when there is no usable
   * camera, or nothing. Never rejects: without media the page still chats
   * and receives the peer's video.
   */
  function startLocalMedia() {
    var support = RtcAdapter.check();
    if (!support.media) {
      showMediaNotice(support.problems.join("; ") + ". You can still chat and see your peer.");
      return Promise.resolve(null);
    }
    return RtcAdapter.getUserMedia({ audio: true, video: true })
      .catch(function (err) {
        var name = err && err.name;
        if (name === "NotFoundError" || name === "NotReadableError" || name === "OverconstrainedError") {
          // No (free) camera: a microphone alone still makes a call.
          return RtcAdapter.getUserMedia({ audio: true, video: false }).then(function (stream) {
            showMediaNotice("No camera available: you are in the call with sound only.");
            return stream;
          });
        }
        throw err;
      })
      .then(function (stream) {
        if (pageDone) {
          // Wrong room or hang-up while the camera was starting: let it go.
          stream.getTracks().forEach(function (track) { track.stop(); });
          return null;
        }
        localStream = stream;
        el.localVideo.srcObject = stream;
        el.muteMic.disabled = stream.getAudioTracks().length === 0;
        el.cameraOff.disabled = stream.getVideoTracks().length === 0;
        return stream;
      })
      .catch(function (err) {
        console.warn("getUserMedia failed:", err);
        showMediaNotice(
          RtcAdapter.describeMediaError(err) + " You can still chat and see and hear your peer."
        );
        return null;
      });
  }

  function showMediaNotice(text) {
    el.mediaNotice.textContent = text;
    show(el.mediaNotice, true);
  }

  function toggleTracks(button, tracks, offLabel, onLabel) {
    var turnOff = button.getAttribute("aria-pressed") !== "true";
    tracks.forEach(function (track) {
      track.enabled = !turnOff;
    });
    button.setAttribute("aria-pressed", String(turnOff));
    button.textContent = turnOff ? onLabel : offLabel;
  }

  el.muteMic.addEventListener("click", function () {
    if (localStream) {
      toggleTracks(el.muteMic, localStream.getAudioTracks(), "Mute mic", "Unmute mic");
    }
  });

  el.cameraOff.addEventListener("click", function () {
    if (localStream) {
      toggleTracks(el.cameraOff, localStream.getVideoTracks(), "Camera off", "Camera on");
    }
  });

  function stopLocalMedia() {
    pageDone = true;
    if (localStream) {
      localStream.getTracks().forEach(function (track) {
        track.stop();
      });
    }
    el.muteMic.disabled = true;
    el.cameraOff.disabled = true;
  }

  // ----------------------------------------------------------- remote media

  function showRemote(stream) {
    if (el.remoteVideo.srcObject !== stream) {
      el.remoteVideo.srcObject = stream;
    }
    el.remoteCaption.textContent = "Peer";
    var playing = el.remoteVideo.play();
    if (playing && playing.catch) {
      playing.catch(function (err) {
        if (err && err.name === "NotAllowedError") {
          // Autoplay with sound was blocked: play muted, offer to unmute.
          el.remoteVideo.muted = true;
          el.remoteVideo.play().catch(function () {});
          show(el.unmuteRemote, true);
        }
      });
    }
  }

  el.unmuteRemote.addEventListener("click", function () {
    el.remoteVideo.muted = false;
    el.remoteVideo.play().catch(function () {});
    show(el.unmuteRemote, false);
  });

  function clearRemote(caption) {
    el.remoteVideo.srcObject = null;
    el.remoteCaption.textContent = caption;
    show(el.unmuteRemote, false);
  }

  // --------------------------------------------------------------- status

  var CALL_STATUS = {
    new: "Connecting…",
    connecting: "Connecting…",
    connected: "Connected",
    disconnected: "Connection interrupted, trying to recover…",
    failed: "The connection failed. Try again, or ask your peer to rejoin.",
  };

  // WRONGROOM reasons the server gives (rtcserver/protocol.py); anything else gets the first line.
  var WRONG_ROOM_TEXT = {
    "": "This room link is not valid, or the room is full.",
    "no-such-room": "This room does not exist (any more): everyone in it has left.",
    "room-full": "This room is full: a call already has two people in it.",
    "invalid-room": "This is not a valid room link.",
    "already-in-room": "This page is already in a room.",
  };

  function showServerNote(text) {
    el.serverNote.textContent = text;
    show(el.serverNote, true);
  }

  function showWrongRoom(reason) {
    setStatus("Wrong room");
    show(el.share, false);
    enableChat(false);
    el.hangUp.disabled = true;
    stopLocalMedia();
    show(document.querySelector("main.call"), false); // nothing to show: no call will happen
    var known = Object.prototype.hasOwnProperty.call(WRONG_ROOM_TEXT, reason);
    el.wrongRoomMessage.textContent = WRONG_ROOM_TEXT[known ? reason : ""];
    show(el.wrongRoom, true);
  }

  function showEnded(message, canRejoin) {
    enableChat(false);
    el.hangUp.disabled = true;
    stopLocalMedia();
    clearRemote("Call ended");
    show(el.signIn, false);
    el.endedMessage.textContent = message;
    show(el.rejoin, canRejoin !== false && client !== null && client.room !== null);
    show(el.ended, true);
  }

  // --------------------------------------------------------------- sign-in

  var AUTH_TEXT = {
    "auth-failed": "Wrong name or password. Try again.",
    "auth-throttled": "Too many failed sign-ins. Wait a minute, then try again.",
    "auth-required": "This server asks for a name and password.",
  };

  var signInNote = "This server asks you to sign in.";

  /** credentials() for RoomClient in password mode: the form's name and password, once submitted. */
  function askForPassword() {
    setStatus("Sign in to continue");
    el.signInMessage.textContent = signInNote;
    show(el.signIn, true);
    el.signInName.focus();
    return new Promise(function (resolve) {
      el.signInForm.onsubmit = function (event) {
        event.preventDefault();
        el.signInForm.onsubmit = null;
        show(el.signIn, false);
        setStatus("Signing in…");
        resolve({ name: el.signInName.value.trim(), password: el.signInPassword.value });
        el.signInPassword.value = "";
      };
    });
  }

  function onAuthError(err, room) {
    if (err.code === "auth-failed" || err.code === "auth-throttled") {
      signInNote = AUTH_TEXT[err.code];
      connect(room); // a refused sign-in closes the socket: the next try is a new one
      return;
    }
    setStatus("Not signed in");
    showEnded(AUTH_TEXT[err.code] || err.message, false);
  }

  el.newRoom.addEventListener("click", startNewRoom);
  el.endedNewRoom.addEventListener("click", startNewRoom);
  el.rejoin.addEventListener("click", function () {
    window.location.href = pageUrl(client.room, true);
  });
  el.hangUp.addEventListener("click", function () {
    if (client) {
      client.hangUp();
      setStatus("You left the call");
      showEnded("You left the call.");
    }
  });

  // ----------------------------------------------------------------- start

  function main() {
    var support = RtcAdapter.check();
    if (!support.ok) {
      setStatus(support.message);
      return;
    }

    var room = null;
    if (params.has("room")) {
      room = RtcLib.parseRoom(params.get("room"));
      if (room === null) {
        showWrongRoom("invalid-room");
        return;
      }
    }

    localMedia = startLocalMedia();
    connect(room);
  }

  /** A RoomClient for `room` (null: a new one), wired to the page. Called again after a refused password. */
  function connect(room) {
    var self = new RtcLib.RoomClient({
      room: room,
      forceRelay: forceRelay,
      localMedia: localMedia,
      token: token,
      credentials: askForPassword,
    });
    client = self;
    window.rtc = self;

    /** Listen to this client only while it is the page's current one. */
    function on(type, handler) {
      self.addEventListener(type, function (event) {
        if (client === self) {
          handler(event);
        }
      });
    }

    on("room", function (event) {
      if (room === null) {
        // A joiner's link is shown once the room has taken it ("calling"),
        // so a wrong room never flashes a link.
        showShareLink(event.detail.room);
        setStatus("Waiting for someone to join. Share this link:");
      }
    });
    on("wrongroom", function (event) {
      showWrongRoom(event.detail.reason);
    });
    on("peerjoined", function () {
      setStatus("A peer is joining…");
      enableChat(true);
    });
    on("calling", function () {
      showShareLink(self.room);
      setStatus("Connecting…");
      enableChat(true);
    });
    on("peerleft", function () {
      setStatus("Your peer left. Waiting for someone to join this link:");
      clearRemote("Peer left");
      enableChat(false);
    });
    on("remotestream", function (event) {
      showRemote(event.detail);
    });
    on("callstate", function (event) {
      var text = CALL_STATUS[event.detail];
      if (text) {
        setStatus(text);
      }
    });
    on("chat", function (event) {
      addChatLine("Peer", event.detail.text);
    });
    on("servererror", function (event) {
      var d = event.detail;
      if (d.code === "no-peer") {
        return; // a candidate that crossed the peer's departure: expected, harmless
      }
      showServerNote("Server: " + (d.message || d.code || "error"));
    });
    on("disconnected", function () {
      setStatus("Disconnected from the server");
      showEnded("The connection to the server was lost.");
    });

    setStatus(room === null ? "Creating a room…" : "Joining the room…");
    el.hangUp.disabled = false;
    self.start().catch(function (err) {
      if (client !== self) {
        return;
      }
      if (err && err.name === "AuthError") {
        onAuthError(err, room);
        return;
      }
      console.error(err);
      setStatus("Could not reach the server");
      showEnded("Could not reach the signaling server. Check your connection and try again.");
    });
  }

  main();
})();
