"""Page-side checks for calls that must go through a TURN relay (coturn).

`RECORD_CANDIDATES` is an init script: it wraps RTCPeerConnection before the page's
scripts load (browsersupport.js takes it at load time), so every candidate the browser
gathers is kept in `window.__gathered`, before the page's own loopback filter sees
it. `LOCAL_CANDIDATES` lists what getStats() says the connection gathered.
"""

from __future__ import annotations

from typing import Any

from tests.browser.callpage import CallPage

RECORD_CANDIDATES = """
(() => {
  const Native = window.RTCPeerConnection;
  window.__gathered = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('icecandidate', (e) => {
        if (e.candidate && e.candidate.candidate) window.__gathered.push(e.candidate.candidate);
      });
    }
  };
})();
"""

LOCAL_CANDIDATES = """
async () => {
  const out = [];
  (await window.rtc.pc.getStats()).forEach((r) => {
    if (r.type === 'local-candidate') {
      out.push({type: r.candidateType, address: r.address, port: r.port});
    }
  });
  return out;
}
"""


def assert_relayed_only(page: CallPage, relay_ports: range) -> dict[str, Any]:
    """The call runs over a coturn relay, and nothing but relay candidates were gathered."""
    pair = page.selected_pair()
    assert pair["localType"] == "relay", pair
    gathered = page.evaluate("window.__gathered")
    assert gathered, "no ICE candidates were gathered"
    assert all(" typ relay" in line for line in gathered), gathered
    local = page.evaluate(LOCAL_CANDIDATES)
    assert local, "getStats() lists no local candidate"
    for candidate in local:
        assert candidate["type"] == "relay", local
        assert candidate["address"] == "127.0.0.1" and candidate["port"] in relay_ports, local
    return pair
