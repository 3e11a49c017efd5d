// Routes one direction's bytes unit by unit (HTTP/2 frames, DNS messages): each unit is
// forwarded, dropped, or held until its verdict; bytes we inject go in only between units, so
// the peer never sees a frame cut in two.
import { HeldBytes } from './held-bytes.js';

export type UnitAction = 'forward' | 'drop' | 'hold';

interface Unit {
  start: number;
  end: number;
  action: UnitAction;
}

export class UnitRouter {
  private readonly held: HeldBytes;
  private readonly units: Unit[] = [];
  private readonly injections: Buffer[] = [];
  /** Absolute offset of the next byte to route. */
  private pos: number;

  constructor(
    private readonly write: (bytes: Buffer) => void,
    startOffset = 0,
  ) {
    this.pos = startOffset;
    this.held = new HeldBytes(startOffset);
  }

  /** A unit's extent is known (from its header); its bytes may not have arrived yet. */
  add(start: number, end: number, action: UnitAction): void {
    this.units.push({ start, end, action });
  }

  /** Resolves held units overlapping [start, end). */
  decide(start: number, end: number, action: 'forward' | 'drop'): void {
    for (const u of this.units) if (u.start >= start && u.end <= end && u.action === 'hold') u.action = action;
  }

  /** Bytes to write at the next unit boundary (at once when we are at one). */
  inject(bytes: Buffer): void {
    this.injections.push(bytes);
  }

  /** A copy of held bytes [start, end) (not yet routed). */
  peek(start: number, end: number): Buffer {
    const parts: Buffer[] = [];
    let at = this.held.start;
    this.held.forEach((b) => {
      const from = Math.max(start, at);
      const to = Math.min(end, at + b.length);
      if (to > from) parts.push(b.subarray(from - at, to - at));
      at += b.length;
    });
    return Buffer.concat(parts);
  }

  push(chunk: Buffer): void {
    this.held.push(chunk);
  }

  private readonly forward = (bytes: Buffer): void => this.write(bytes);

  /** Routes everything that can be routed now. */
  pump(): void {
    for (;;) {
      const unit = this.units[0];
      if (unit === undefined || this.pos === unit.start) this.flushInjections();
      if (unit === undefined || unit.action === 'hold' || this.held.size === 0) {
        if (unit !== undefined && unit.end === unit.start) this.units.shift();
        else return;
        continue;
      }
      const until = Math.min(unit.end, this.held.end);
      if (unit.action === 'forward') this.held.release(until, this.forward);
      else this.held.drop(until);
      this.pos = until;
      if (until === unit.end) this.units.shift();
      else return;
    }
  }

  private flushInjections(): void {
    while (this.injections.length > 0) this.write(this.injections.shift() as Buffer);
  }
}
