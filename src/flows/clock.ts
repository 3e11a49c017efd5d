// Record timestamps: RFC 3339 (section 5.6) in UTC with nanosecond fractions.
// Date.now() has millisecond resolution and can step backwards (NTP), so the wall clock is read
// once and the monotonic process.hrtime.bigint() supplies the offset: times from one sidecar
// never go backwards and have real sub-millisecond resolution.

const NS_PER_SECOND = 1_000_000_000n;

export class FlowClock {
  private readonly baseWallNs: bigint;
  private readonly baseMonotonicNs: bigint;
  private cachedSecond = -1n;
  private cachedPrefix = '';

  constructor(wallMs: number = Date.now(), monotonicNs: bigint = process.hrtime.bigint()) {
    this.baseWallNs = BigInt(Math.round(wallMs * 1e6));
    this.baseMonotonicNs = monotonicNs;
  }

  /** Nanoseconds since the Unix epoch. */
  nowNs(): bigint {
    return this.baseWallNs + (process.hrtime.bigint() - this.baseMonotonicNs);
  }

  /** Formats epoch nanoseconds as 2026-11-23T15:10:54.123456789Z. */
  format(epochNs: bigint): string {
    const second = epochNs / NS_PER_SECOND;
    const fraction = epochNs % NS_PER_SECOND;
    // Many records share a second; the date part is formatted once per second.
    if (second !== this.cachedSecond) {
      this.cachedSecond = second;
      this.cachedPrefix = new Date(Number(second) * 1000).toISOString().slice(0, 19);
    }
    return `${this.cachedPrefix}.${fraction.toString().padStart(9, '0')}Z`;
  }
}

const RFC3339_NANO = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{9})Z$/;

/** Parses a time produced by FlowClock.format back to epoch nanoseconds (null if not one). */
export function parseRfc3339Nano(text: string): bigint | null {
  const match = RFC3339_NANO.exec(text);
  if (match === null) return null;
  const ms = Date.parse(`${text.slice(0, 19)}Z`);
  if (Number.isNaN(ms)) return null;
  return BigInt(ms) * 1_000_000n + BigInt(match[7] ?? '0');
}
