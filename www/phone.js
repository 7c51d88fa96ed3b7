/*
 * phone.js: the soft phone (phone.html). All protocol work is in phonelib.js
 * (PhoneClient); this file turns its events into the login form, the list of
 * people, the ringing and in-call screens, and the chat.
 *
 *   phone.html            log in with a name (and a password when the server
 *                         asks for one), then call people or be called
 *   phone.html?token=T    a server in token mode: T goes on the WebSocket URL,
 *                         and the name field starts with the token's name
 *   &relay=1              force iceTransportPolicy "relay" (testing TURN)
 *
 * For tests and debugging:
 *   window.phone       the PhoneClient: .name, .users (Map), .call (null or
 *                      {id, peer, media, direction, state, room}), .pc (the
 *                      call's RTCPeerConnection or null), .dc (its
 *                      RTCDataChannel or null), .localStream
 *   window.phoneRing   the ring tone: .playing is true while it rings
 *
 * Text from the network (names, chat) is only ever put in the page with
 * textContent.
 */
(function () {
  "use strict";

  function $(id) {
    return document.getElementById(id);
  }

  var el = {
    statusText: $("status-text"),
    me: $("me"),
    meName: $("me-name"),
    login: $("login"),
    loginForm: $("login-form"),
    loginName: $("login-name"),
    loginPasswordField: $("login-password-field"),
    loginPassword: $("login-password"),
    loginSubmit: $("login-submit"),
    loginError: $("login-error"),
    lost: $("lost"),
    lostMessage: $("lost-message"),
    reconnect: $("reconnect"),
    note: $("note"),
    mediaNotice: $("media-notice"),
    incoming: $("incoming"),
    incomingFrom: $("incoming-from"),
    incomingMedia: $("incoming-media"),
    accept: $("accept"),
    reject: $("reject"),
    outgoing: $("outgoing"),
    outgoingText: $("outgoing-text"),
    cancelCall: $("cancel-call"),
    directory: $("directory"),
    users: $("users"),
    noUsers: $("no-users"),
    inCall: $("in-call"),
    videos: $("videos"),
    remoteVideo: $("remoteVideo"),
    localVideo: $("localVideo"),
    remoteAudio: $("remoteAudio"),
    callTitle: $("call-title"),
    muteMic: $("mute-mic"),
    cameraOff: $("camera-off"),
    unmuteRemote: $("unmute-remote"),
    hangUp: $("hang-up"),
    chatLog: $("chat-log"),
    chatForm: $("chat-form"),
    chatInput: $("chat-input"),
    chatSend: $("chat-send"),
  };

  var params = new URLSearchParams(window.location.search);
  var token = params.get("token") || null;
  var MEDIA_WORDS = { video: "video", audio: "voice", data: "text" };

  function show(node, visible) {
    node.hidden = !visible;
  }

  function setStatus(text) {
    el.statusText.textContent = text;
  }

  function showNote(text) {
    el.note.textContent = text;
    show(el.note, !!text);
  }

  // ------------------------------------------------------------- ring tone

  /**
   * The ring of an incoming call, from a Web Audio oscillator pair (440 +
   * 480 Hz, 2 s on, 4 s off, like a North American ring). A browser may keep
   * the AudioContext suspended until the person has touched the page; the
   * visual ringing still shows, and `playing` tells whether it should sound.
   */
  class RingTone {
    constructor() {
      this.playing = false;
      this._context = null;
      this._timer = null;
      this._nodes = [];
    }

    start() {
      if (this.playing) {
        return;
      }
      var AudioContext = window.AudioContext || window.webkitAudioContext;
      if (!AudioContext) {
        return;
      }
      this.playing = true;
      this._context = this._context || new AudioContext();
      this._context.resume().catch(function () {});
      var self = this;
      this._burst();
      this._timer = setInterval(function () { self._burst(); }, 6000);
    }

    stop() {
      if (!this.playing) {
        return;
      }
      this.playing = false;
      clearInterval(this._timer);
      this._timer = null;
      this._nodes.forEach(function (node) {
        try {
          node.stop();
        } catch (err) {
          // already stopped
        }
      });
      this._nodes = [];
    }

    _burst() {
      var ctx = this._context;
      var gain = ctx.createGain();
      var t = ctx.currentTime;
      gain.gain.setValueAtTime(0, t);
      gain.gain.linearRampToValueAtTime(0.08, t + 0.05);
      gain.gain.setValueAtTime(0.08, t + 1.95);
      gain.gain.linearRampToValueAtTime(0, t + 2);
      gain.connect(ctx.destination);
      var self = this;
      this._nodes = [440, 480].map(function (freq) {
        var osc = ctx.createOscillator();
        osc.frequency.value = freq;
        osc.connect(gain);
        osc.start(t);
        osc.stop(t + 2);
        osc.onended = function () {
          osc.disconnect();
          self._nodes = self._nodes.filter(function (n) { return n !== osc; });
        };
        return osc;
      });
    }
  }

  var ring = new RingTone();
  window.phoneRing = ring;

  // ----------------------------------------------------------- local media

  function showMediaNotice(text) {
    el.mediaNotice.textContent = text;
    show(el.mediaNotice, !!text);
  }

  /**
   * The camera and microphone for a video call (the microphone alone if no
   * camera works), only the microphone for a voice call. Never rejects: a
   * call without local media still receives the peer.
   */
  function getLocalMedia(media) {
    showMediaNotice("");
    var wantVideo = media === "video";
    return RtcAdapter.getUserMedia({ audio: true, video: wantVideo })
      .catch(function (err) {
        var name = err && err.name;
        if (wantVideo && (name === "NotFoundError" || name === "NotReadableError" || name === "OverconstrainedError")) {
          return RtcAdapter.getUserMedia({ audio: true, video: false }).then(function (stream) {
            showMediaNotice("No camera available: you are in the call with sound only.");
            return stream;
          });
        }
        throw err;
      })
      .catch(function (err) {
        console.warn("getUserMedia failed:", err);
        showMediaNotice(RtcAdapter.describeMediaError(err) + " You can still see, hear and text your peer.");
        return null;
      });
  }

  // ---------------------------------------------------------------- client

  var client = new RtcLib.PhoneClient({
    token: token,
    forceRelay: params.get("relay") === "1",
    getLocalMedia: getLocalMedia,
  });
  window.phone = client;

  var lastLogin = null; // {name, password}: what Reconnect logs in with again
  var authMode = null;

  // ------------------------------------------------------------------ login

  var LOGIN_TEXT = {
    taken: "That name is taken: someone online is using it. Choose another.",
    invalid: "That name is not allowed",
    auth: "Your sign-in is for another name.",
    "auth-failed": "Wrong name or password.",
    "auth-throttled": "Too many failed logins. Wait a minute, then try again.",
    "token-missing": "This server needs a personal link with a sign-in token (?token=…) in it.",
  };

  function showLoginError(text) {
    el.loginError.textContent = text;
    show(el.loginError, !!text);
  }

  function loginMessage(err) {
    if (err && err.name === "LoginError") {
      if (err.kind === "invalid") {
        // "invalid name: U+200D is not allowed": the server names code points, never raw characters.
        return LOGIN_TEXT.invalid + " (" + err.reason.replace(/^invalid name:\s*/, "") + ").";
      }
      return LOGIN_TEXT[err.kind] || "Login refused: " + err.reason;
    }
    if (err && err.name === "AuthError") {
      return LOGIN_TEXT[err.code] || err.message;
    }
    return "Could not reach the server. Check your connection and try again.";
  }

  function logIn(name, password) {
    el.loginSubmit.disabled = true;
    showLoginError("");
    setStatus("Logging in…");
    return client.login(name, password).then(
      function (myName) {
        lastLogin = { name: name, password: password };
        el.loginSubmit.disabled = false;
        el.loginPassword.value = "";
        show(el.login, false);
        show(el.lost, false);
        el.meName.textContent = myName;
        show(el.me, true);
        show(el.directory, true);
        setStatus("Online");
        renderUsers(client.userList());
      },
      function (err) {
        el.loginSubmit.disabled = false;
        setStatus("Not logged in");
        show(el.lost, false);
        show(el.login, true);
        showLoginError(loginMessage(err));
      }
    );
  }

  el.loginForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var name = el.loginName.value.trim();
    if (name) {
      logIn(name, el.loginPassword.value);
    }
  });

  el.reconnect.addEventListener("click", function () {
    if (lastLogin) {
      el.reconnect.disabled = true;
      logIn(lastLogin.name, lastLogin.password).then(function () {
        el.reconnect.disabled = false;
      });
    }
  });

  // -------------------------------------------------------------- directory

  function renderUsers(users) {
    var inCall = client.call !== null;
    el.users.textContent = "";
    users.forEach(function (user) {
      var item = document.createElement("li");
      item.dataset.name = user.name;
      item.className = user.status === "in-call" ? "busy" : "available";
      var name = document.createElement("span");
      name.className = "name";
      name.textContent = user.name;
      var status = document.createElement("span");
      status.className = "presence";
      status.textContent = user.status === "in-call" ? "busy" : "available";
      item.appendChild(name);
      item.appendChild(status);
      [["video", "Call", "call-video"], ["audio", "Voice", "call-audio"], ["data", "Text", "call-data"]].forEach(
        function (b) {
          var button = document.createElement("button");
          button.type = "button";
          button.className = b[2];
          button.textContent = b[1];
          // Busy people can still be tried: the server answers BUSY, which the page explains.
          button.disabled = inCall;
          button.setAttribute("aria-label", b[1] + " " + user.name);
          button.addEventListener("click", function () {
            startCall(user.name, b[0]);
          });
          item.appendChild(button);
        }
      );
      el.users.appendChild(item);
    });
    show(el.noUsers, users.length === 0);
  }

  client.addEventListener("users", function (event) {
    renderUsers(event.detail);
  });

  // ------------------------------------------------------------------ calls

  function startCall(name, media) {
    if (!client.placeCall(name, media)) {
      return;
    }
    showNote("");
    el.outgoingText.textContent = "Calling " + name + " (" + MEDIA_WORDS[media] + ")…";
    show(el.outgoing, true);
    setStatus("Calling");
    renderUsers(client.userList());
  }

  client.addEventListener("ringing", function (event) {
    el.outgoingText.textContent = "Ringing " + event.detail.to + "…";
  });

  client.addEventListener("incoming", function (event) {
    var d = event.detail;
    showNote("");
    el.incomingFrom.textContent = d.from;
    el.incomingMedia.textContent = MEDIA_WORDS[d.media] + " call";
    show(el.incoming, true);
    setStatus("Incoming call");
    ring.start();
    renderUsers(client.userList());
  });

  el.accept.addEventListener("click", function () {
    ring.stop();
    show(el.incoming, false);
    setStatus("Connecting…");
    client.accept();
  });

  el.reject.addEventListener("click", function () {
    var peer = client.call ? client.call.peer : "";
    ring.stop();
    client.reject();
    showNote("You rejected the call from " + peer + ".");
  });

  el.cancelCall.addEventListener("click", function () {
    client.hangUp();
  });

  el.hangUp.addEventListener("click", function () {
    client.hangUp();
  });

  client.addEventListener("accepted", function (event) {
    var d = event.detail;
    ring.stop();
    show(el.incoming, false);
    show(el.outgoing, false);
    show(el.directory, false);
    el.callTitle.textContent = (d.media === "data" ? "Texting " : "In a call with ") + d.peer;
    // Video calls show video; a voice call plays through <audio>; a text call has only the chat.
    show(el.videos, d.media === "video");
    show(el.cameraOff, d.media === "video");
    show(el.muteMic, d.media !== "data");
    resetToggle(el.muteMic, "Mute mic");
    resetToggle(el.cameraOff, "Camera off");
    el.chatLog.textContent = "";
    enableChat(false);
    show(el.inCall, true);
    setStatus("Connecting…");
  });

  client.addEventListener("localstream", function (event) {
    if (client.call && client.call.media === "video") {
      el.localVideo.srcObject = event.detail;
    }
  });

  client.addEventListener("remotestream", function (event) {
    var media = client.call ? client.call.media : "video";
    var sink = media === "video" ? el.remoteVideo : el.remoteAudio;
    if (sink.srcObject !== event.detail) {
      sink.srcObject = event.detail;
    }
    var playing = sink.play();
    if (playing && playing.catch) {
      playing.catch(function (err) {
        if (err && err.name === "NotAllowedError") {
          // Autoplay with sound was blocked: play muted, offer to unmute.
          sink.muted = true;
          sink.play().catch(function () {});
          show(el.unmuteRemote, true);
        }
      });
    }
  });

  el.unmuteRemote.addEventListener("click", function () {
    [el.remoteVideo, el.remoteAudio].forEach(function (sink) {
      sink.muted = false;
      sink.play().catch(function () {});
    });
    show(el.unmuteRemote, false);
  });

  var CALL_STATE_TEXT = {
    connecting: "Connecting…",
    connected: "In a call",
    disconnected: "Connection interrupted, trying to recover…",
    failed: "The call's connection failed. Hang up and try again.",
  };

  client.addEventListener("callstate", function (event) {
    var text = CALL_STATE_TEXT[event.detail];
    if (text) {
      setStatus(text);
    }
  });

  function endedText(d) {
    var who = d.peer;
    switch (d.reason) {
      case "rejected":
        return who + " rejected the call.";
      case "busy":
        return who + " is busy in another call. Try again later.";
      case "noanswer":
        return "No answer from " + who + ".";
      case "cancelled":
        return "Missed call from " + who + ".";
      case "hangup":
        return who + " hung up.";
      case "local":
        return "Call with " + who + " ended.";
      case "disconnected":
        return "The call with " + who + " ended: the connection to the server was lost.";
      case "error":
        if (d.code === "unknown-user") {
          return who + " is not online any more.";
        }
        return "The call failed: " + (d.message || d.code) + ".";
      default:
        return "The call ended.";
    }
  }

  client.addEventListener("ended", function (event) {
    var d = event.detail;
    ring.stop();
    show(el.incoming, false);
    show(el.outgoing, false);
    show(el.inCall, false);
    show(el.unmuteRemote, false);
    el.remoteVideo.srcObject = null;
    el.remoteAudio.srcObject = null;
    el.localVideo.srcObject = null;
    enableChat(false);
    showNote(endedText(d)); // after Reject, the click handler then says it in its own words
    if (client.connected) {
      show(el.directory, true);
      setStatus("Online");
      renderUsers(client.userList());
    }
  });

  client.addEventListener("servererror", function (event) {
    var d = event.detail;
    showNote("Server: " + (d.message || d.code));
  });

  client.addEventListener("disconnected", function () {
    ring.stop();
    show(el.directory, false);
    show(el.me, false);
    setStatus("Disconnected");
    el.lostMessage.textContent = "The connection to the server was lost.";
    show(el.lost, true);
    el.reconnect.disabled = false;
  });

  // ----------------------------------------------------------- in-call controls

  function resetToggle(button, label) {
    button.setAttribute("aria-pressed", "false");
    button.textContent = label;
  }

  function toggleTracks(button, kind, offLabel, onLabel) {
    var stream = client.localStream;
    if (!stream) {
      return;
    }
    var turnOff = button.getAttribute("aria-pressed") !== "true";
    stream.getTracks().forEach(function (track) {
      if (track.kind === kind) {
        track.enabled = !turnOff;
      }
    });
    button.setAttribute("aria-pressed", String(turnOff));
    button.textContent = turnOff ? onLabel : offLabel;
  }

  el.muteMic.addEventListener("click", function () {
    toggleTracks(el.muteMic, "audio", "Mute mic", "Unmute mic");
  });

  el.cameraOff.addEventListener("click", function () {
    toggleTracks(el.cameraOff, "video", "Camera off", "Camera on");
  });

  // ------------------------------------------------------------------- chat

  function enableChat(enabled) {
    el.chatInput.disabled = !enabled;
    el.chatSend.disabled = !enabled;
  }

  function addChatLine(who, text, mine) {
    var item = document.createElement("li");
    item.className = mine ? "mine" : "theirs";
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

  client.addEventListener("textopen", function () {
    enableChat(true);
    if (client.call && client.call.media === "data") {
      setStatus("Texting");
    }
  });

  client.addEventListener("textclosed", function () {
    enableChat(false);
  });

  client.addEventListener("text", function (event) {
    addChatLine(client.call ? client.call.peer : "Peer", event.detail.text, false);
  });

  el.chatForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = el.chatInput.value.trim();
    if (!text) {
      return;
    }
    if (client.sendText(text)) {
      addChatLine("You", text, true);
      el.chatInput.value = "";
    }
  });

  // ------------------------------------------------------------------ start

  function main() {
    var support = RtcAdapter.check();
    if (!support.ok) {
      setStatus(support.message);
      return;
    }
    RtcLib.loadServerConfig(RtcLib.configUrl()).then(function (config) {
      authMode = config.auth === "token" || config.auth === "password" ? config.auth : null;
      show(el.loginPasswordField, authMode === "password");
      el.loginPassword.required = authMode === "password";
      if (authMode === "token") {
        if (!token) {
          showLoginError(LOGIN_TEXT["token-missing"]);
          el.loginSubmit.disabled = true;
        } else {
          el.loginName.value = RtcLib.tokenName(token) || "";
        }
      }
      setStatus("Not logged in");
      show(el.login, true);
      el.loginName.focus();
    });
  }

  main();
})();
