// Routes one direction's bytes unit by unit (HTTP/2 frames, DNS messages): each unit is
// forwarded, dropped, or held until its verdict; bytes we inject go in only between units, so
// the peer never sees a frame cut in two. The forwarded units of one read leave in one write: a
// socket write per frame would be a syscall per frame.
import { HeldBytes } from './held-bytes.js';

export type UnitAction = 'forward' | 'drop' | 'hold';

interface Unit {
  start: number;
  end: number;
  action: UnitAction;
}

export class UnitRouter {
  private held: HeldBytes;
  private readonly units: Unit[] = [];
  private readonly injections: Array<{ bytes: Buffer; at: number }> = [];
  /** Absolute offset of the next byte to route. */
  private pos: number;

  /** False until the first unit has gone through, when `injectAfterFirstUnit` (HTTP/2: SETTINGS first). */
  private mayInject: boolean;

  constructor(
    private readonly write: (bytes: Buffer) => void,
    options: { startOffset?: number; injectAfterFirstUnit?: boolean } = {},
  ) {
    this.pos = options.startOffset ?? 0;
    this.held = new HeldBytes(this.pos);
    this.mayInject = options.injectAfterFirstUnit !== true;
  }

  /** A unit's extent is known (from its header); its bytes may not have arrived yet. */
  add(start: number, end: number, action: UnitAction): void {
    this.units.push({ start, end, action });
  }

  /** Resolves held units overlapping [start, end). */
  decide(start: number, end: number, action: 'forward' | 'drop'): void {
    for (const u of this.units) if (u.start >= start && u.end <= end && u.action === 'hold') u.action = action;
  }

  /**
   * Bytes to write at the first unit boundary at or after stream offset `at` (default: the next
   * boundary, at once when we are at one). A replacement for dropped units gives their start.
   */
  inject(bytes: Buffer, at = 0): void {
    this.injections.push({ bytes, at });
  }

  /** Bytes pushed and not yet routed (awaiting their unit, a verdict, or the rest of their unit). */
  get heldSize(): number {
    return this.held.size;
  }

  /** Some held bytes are views of a read buffer (compact() copies the small ones out). */
  get holdsViews(): boolean {
    return this.held.holdsViews;
  }

  /** After a read: copies small held views out of the read buffer so the relay can reuse it. */
  compact(): void {
    this.held.compact();
  }

  /** Units known and not yet routed (memory for the state budget). */
  get pendingUnits(): number {
    return this.units.length + this.injections.length;
  }

  /** Absolute offset one past the last byte pushed so far. */
  get available(): number {
    return this.held.end;
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

  /**
   * Bytes that already went out before routing began (a greeting forwarded during detection):
   * the units they cover count as routed, and one they cut in two must be forwarded whole.
   */
  skip(length: number): void {
    this.releaseForwarded();
    this.pos += length;
    this.held = new HeldBytes(this.pos);
    while (this.units.length > 0 && (this.units[0] as Unit).end <= this.pos) {
      this.units.shift();
      this.mayInject = true;
    }
    const straddling = this.units[0];
    if (straddling !== undefined && straddling.start < this.pos) straddling.action = 'forward';
  }

  /**
   * Routing stops (the stream is no longer parsed: a parse error in monitor/learn): held units
   * go as they are, then whatever lies past the last unit; later bytes bypass the router.
   */
  flushAll(): void {
    for (const u of this.units) if (u.action === 'hold') u.action = 'forward';
    this.mayInject = true;
    this.pump();
    if (this.units.length > 0) return; // a unit still arriving: its tail follows unrouted
    this.flushInjections();
    this.held.release(this.held.end, this.forward);
    this.pos = this.held.end;
  }

  push(chunk: Buffer): void {
    this.held.push(chunk);
  }

  private readonly forward = (bytes: Buffer): void => this.write(bytes);

  /**
   * Forwarded units are released from `held` in one go, up to `forwardTo`, when routing stops or
   * something else must go first (a drop, an injection): one write and one view per read rather
   * than two views and a write per frame.
   */
  private forwardTo = -1;

  /** Routes everything that can be routed now. */
  pump(): void {
    for (;;) {
      const unit = this.units[0];
      if (unit === undefined || this.pos === unit.start) this.flushInjections();
      if (unit === undefined || unit.action === 'hold' || this.held.end <= this.pos) {
        if (unit !== undefined && unit.end === unit.start) this.units.shift();
        else break;
        continue;
      }
      const until = Math.min(unit.end, this.held.end);
      if (unit.action === 'forward') {
        this.forwardTo = until;
      } else {
        this.releaseForwarded();
        this.held.drop(until);
      }
      this.pos = until;
      if (until === unit.end) {
        this.units.shift();
        this.mayInject = true;
      } else break;
    }
    this.releaseForwarded();
  }

  private releaseForwarded(): void {
    if (this.forwardTo > this.held.start) this.held.release(this.forwardTo, this.forward);
  }

  private flushInjections(): void {
    const first = this.injections[0];
    if (!this.mayInject || first === undefined || first.at > this.pos) return;
    this.releaseForwarded(); // what was forwarded before the boundary goes first
    while (this.injections.length > 0 && (this.injections[0] as { at: number }).at <= this.pos) {
      this.write((this.injections.shift() as { bytes: Buffer }).bytes);
    }
  }
}
