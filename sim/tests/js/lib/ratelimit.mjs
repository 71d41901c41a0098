// The message and typing budgets, shared by the backends of this folder.

const WINDOW_MS = 60_000;

// Exact sliding log: at most `limit` accepted events in any window.
export class SlidingWindow {
  constructor(limit) {
    this.limit = limit;
    this.accepted = [];
  }

  // null when counted, else milliseconds until the oldest counted event leaves the window
  tryAcquire(now) {
    while (this.accepted.length > 0 && now - this.accepted[0] >= WINDOW_MS) this.accepted.shift();
    if (this.accepted.length < this.limit) {
      this.accepted.push(now);
      return null;
    }
    const oldest = this.accepted.length > 0 ? this.accepted[0] : now;
    return Math.max(0, oldest + WINDOW_MS - now);
  }
}
