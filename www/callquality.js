/*
 * callquality.js: how long the call has lasted, and how good its connection
 * is, from getStats() sampled every few seconds: the round-trip time of the
 * candidate pair in use and the share of the peer's packets lost since the
 * previous sample.
 */
import { show } from "./ui.js";

const SAMPLE_MS = 2000;

/** "good" | "fair" | "poor" from a round-trip time (s, or null) and a loss fraction. */
export function rate(rtt, loss) {
  if ((rtt !== null && rtt > 0.4) || loss > 0.08) {
    return "poor";
  }
  if ((rtt !== null && rtt > 0.15) || loss > 0.02) {
    return "fair";
  }
  return "good";
}

/**
 * Sample `pc` until stop(); report({level, rtt, loss}) after each sample.
 * Returns stop().
 */
export function watchQuality(pc, report) {
  let previous = null;
  let stopped = false;
  async function sample() {
    if (stopped || pc.connectionState !== "connected") {
      return;
    }
    const stats = await pc.getStats();
    let rtt = null;
    let received = 0;
    let lost = 0;
    stats.forEach((r) => {
      if (r.type === "transport" && r.selectedCandidatePairId) {
        const pair = stats.get(r.selectedCandidatePairId);
        if (pair && typeof pair.currentRoundTripTime === "number") {
          rtt = pair.currentRoundTripTime;
        }
      } else if (r.type === "inbound-rtp") {
        received += r.packetsReceived || 0;
        lost += Math.max(0, r.packetsLost || 0);
      }
    });
    const now = { received, lost };
    let loss = 0;
    if (previous) {
      const got = now.received - previous.received;
      const missed = now.lost - previous.lost;
      loss = got + missed > 0 ? missed / (got + missed) : 0;
    }
    previous = now;
    if (!stopped) {
      report({ level: rate(rtt, loss), rtt, loss });
    }
  }
  const timer = setInterval(() => {
    sample().catch(() => {}); // a closing connection: the next call starts a new watch
  }, SAMPLE_MS);
  sample().catch(() => {});
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

/** "m:ss", or "h:mm:ss" past an hour. */
export function formatDuration(ms) {
  const total = Math.floor(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

const QUALITY_TEXT = { good: "Good connection", fair: "Fair connection", poor: "Poor connection" };

/** The call timer and quality indicator of one page (two elements, hidden between calls). */
export class CallInfo {
  constructor({ timer, quality }) {
    this.timerEl = timer;
    this.qualityEl = quality;
    this._interval = null;
    this._stopQuality = null;
  }

  get running() {
    return this._interval !== null;
  }

  /** Start counting from now, and watching `pc`. */
  start(pc) {
    this.stop();
    const started = Date.now();
    const tick = () => {
      this.timerEl.textContent = formatDuration(Date.now() - started);
    };
    tick();
    this._interval = setInterval(tick, 1000);
    show(this.timerEl, true);
    this._stopQuality = watchQuality(pc, (q) => {
      const el = this.qualityEl;
      el.dataset.level = q.level;
      el.textContent = QUALITY_TEXT[q.level];
      const rtt = q.rtt === null ? "unknown" : `${Math.round(q.rtt * 1000)} ms`;
      el.title = `Round trip ${rtt}, ${(q.loss * 100).toFixed(1)}% packets lost`;
      show(el, true);
    });
  }

  stop() {
    clearInterval(this._interval);
    this._interval = null;
    if (this._stopQuality) {
      this._stopQuality();
      this._stopQuality = null;
    }
    show(this.timerEl, false);
    show(this.qualityEl, false);
  }
}
