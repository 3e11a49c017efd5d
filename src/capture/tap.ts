// The capture tap of one relayed connection: what the relay (src/net/connection.ts) tells it —
// bytes read from the client, bytes written to the client, FINs and resets — becomes TCP frames
// (./tcp-frames.ts) with the time of each read, written to every capture the connection belongs
// to. The tap is the app's view of the connection: client → server is what the client sent
// (denied requests included), server → client what it received (403s we answered included).
//
// A connection only has a tap while some capture could want it (capture.onAlert, a rule with
// `capture: true`, an on-demand capture running): the relay checks one field, so connections
// cost nothing otherwise. Until a capture takes the connection, the tap keeps its first frames —
// the handshake and up to `preBufferBytes` of frames — so a capture started by an alert or a
// rule decision begins at the connection's first byte. Past that it only counts bytes, to keep
// sequence numbers right: a capture that starts later has an explicit gap. Holding every byte
// until an alert that may never come is not bounded (a DLP hit can be deep in a 1 GiB upload), so
// the gap is reported instead, three ways: the sequence numbers jump by the bytes left out
// (tshark: "previous segment(s) not captured", and "Follow TCP stream" shows the missing bytes
// as such), the first frame after the gap carries a comment with the byte counts (pkt_comment),
// and the records that name the capture carry `captureGap` (gapOf()).
import { frameLengthOf, ownBlock, withComment } from './pcapng.js';
import { TcpFrames, type Side } from './tcp-frames.js';

export interface Endpoint {
  ip: string;
  port: number;
}

/** Where a tap's frames go: one capture file (./store.ts). */
export interface CaptureSink {
  readonly id: string;
  /** Appends pcapng blocks (already encoded); false when the sink is full or finished. */
  write(block: Buffer): boolean;
  /** A connection in this capture ended. */
  flowEnded(flowId: string): void;
}

/** Shared bound on all taps' pre-buffers (bytes), owned by the store. */
export interface PreBufferBudget {
  /** Takes n bytes from the budget; false when it is spent. */
  take(n: number): boolean;
  give(n: number): void;
  /** A connection's pre-buffer filled up (counted). */
  full(): void;
}

export /** Header bytes of the frames around a segment (data + acknowledgement), for the pre-buffer's estimate. */
const FRAME_OVERHEAD = 2 * (14 + 40 + 20);

/** Bytes of a connection a capture does not hold: after the pre-buffer filled, before the capture began. */
export interface CaptureGap {
  fromClient: number;
  toClient: number;
}

export function nowMicros(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

export class CaptureTap {
  private readonly frames: TcpFrames;
  /** The first frames (their packet blocks, in memory of their own), for captures that start later; null once the pre-buffer is dropped. */
  private kept: Buffer[] | null = [];
  private keptBytes = 0;
  /** The pre-buffer filled up: later frames are not kept (only sequence numbers advance). */
  private keptFull = false;
  private readonly sinks: CaptureSink[] = [];
  private ended = false;
  private finished: { client: boolean; server: boolean } = { client: false, server: false };
  /** Bytes seen before this tap existed (a capture that joined an open connection). */
  private readonly midStream: boolean;
  private readonly comment: string;
  /** The client bytes of the read in progress, when not kept (until settle()). */
  private unseen: Buffer | undefined;
  /** Captures that have not had a frame of this connection yet (their first one carries the comment). */
  private readonly fresh = new Set<CaptureSink>();
  /** Bytes each side sent so far, and how many of them the kept frames hold (a prefix). */
  private readonly seen = { client: 0, server: 0 };
  private readonly keptEnd = { client: 0, server: 0 };
  /** Each capture's gap (when it has one), by capture id; its next frame carries a note of it. */
  private readonly gaps = new Map<string, CaptureGap>();
  private readonly gapNotes = new Map<CaptureSink, string>();

  constructor(
    readonly flowId: string,
    readonly client: Endpoint,
    readonly server: Endpoint,
    private readonly preBufferBytes: number,
    private readonly budget: PreBufferBudget,
    /** Bytes already exchanged when the tap was made (0, 0 at accept). */
    already: { fromClient: number; toClient: number } = { fromClient: 0, toClient: 0 },
  ) {
    const isn = { client: (Math.random() * 0x100000000) >>> 0, server: (Math.random() * 0x100000000) >>> 0 };
    this.frames = new TcpFrames(client, server, isn);
    this.midStream = already.fromClient > 0 || already.toClient > 0;
    this.comment = `sidewall flow ${flowId}${this.midStream ? ' (capture joined the open connection)' : ''}`;
    if (this.midStream) {
      // The handshake happened long ago: numbers start where the stream is now, without a SYN.
      this.frames.handshake();
      this.frames.skip('client', already.fromClient);
      this.frames.skip('server', already.toClient);
      this.seen.client = this.keptEnd.client = already.fromClient;
      this.seen.server = this.keptEnd.server = already.toClient;
    } else this.emit(this.frames.handshakeBlocks(nowMicros()));
  }

  /** The captures this connection is written to. */
  get captureIds(): string[] {
    return this.sinks.map((s) => s.id);
  }

  /** Whether the pre-buffer still holds the connection's beginning (and all of it since). */
  get complete(): boolean {
    return !this.midStream && !this.keptFull;
  }

  /** The bytes a capture of this connection does not hold (undefined: none missing). */
  gapOf(captureId: string): CaptureGap | undefined {
    return this.gaps.get(captureId);
  }

  /** Every capture's gap, by capture id (empty when none has one). */
  get captureGaps(): ReadonlyMap<string, CaptureGap> {
    return this.gaps;
  }

  /** Adds a capture: it gets the kept beginning first, then every frame from now on. */
  attach(sink: CaptureSink): void {
    if (this.sinks.includes(sink)) return;
    this.sinks.push(sink);
    const kept = this.kept ?? [];
    // The first frame a capture gets from this connection names the flow (Wireshark shows it).
    kept.forEach((k, i) => sink.write(i === 0 ? withComment(k, this.comment) : k));
    if (kept.length === 0) this.fresh.add(sink);
    // What was sent after the kept frames and before now is not in this capture: say so.
    const gap = { fromClient: this.seen.client - this.keptEnd.client, toClient: this.seen.server - this.keptEnd.server };
    if (!this.midStream && (gap.fromClient > 0 || gap.toClient > 0)) {
      this.gaps.set(sink.id, gap);
      this.gapNotes.set(sink, `sidewall: ${gap.fromClient} bytes from the client and ${gap.toClient} bytes to it not captured here (sent after the ${this.preBufferBytes}-byte pre-buffer filled, before this capture began)`);
    }
    const unseen = this.unseen;
    if (unseen !== undefined) {
      // The bytes being read right now (those that raised the alert, say) are in the capture.
      this.unseen = undefined;
      this.emit(this.frames.dataBlocks(nowMicros(), 'client', unseen));
      this.seen.client += unseen.length;
    }
    if (this.ended) sink.flowEnded(this.flowId);
  }

  detach(sink: CaptureSink): void {
    const at = this.sinks.indexOf(sink);
    if (at >= 0) this.sinks.splice(at, 1);
    this.fresh.delete(sink);
    this.gapNotes.delete(sink);
  }

  fromClient(bytes: Buffer): void {
    if (this.ended || bytes.length === 0) return;
    this.settle();
    if (this.sinks.length === 0 && (this.keptFull || this.kept === null || this.keptBytes + bytes.length + FRAME_OVERHEAD > this.preBufferBytes)) {
      // What fits of this read is kept (a first read larger than the pre-buffer still leaves the
      // connection's beginning in it); the rest is not: but the L7 layer reads these bytes next and
      // may raise the alert that starts a capture, which must hold them. They stay referenced (not
      // copied) until settle().
      const taken = this.keepPrefix('client', bytes);
      this.unseen = taken === 0 ? bytes : bytes.subarray(taken);
      return;
    }
    this.onData('client', bytes);
  }

  /**
   * With no capture yet and the pre-buffer about to fill: keeps the part of a read that fits,
   * then marks the pre-buffer full. Returns how many bytes of the read it took (their sequence
   * numbers are spent, kept or not: the caller goes on after them).
   */
  private keepPrefix(from: Side, bytes: Buffer): number {
    let taken = 0;
    if (!this.keptFull && this.kept !== null) {
      const room = this.preBufferBytes - this.keptBytes - FRAME_OVERHEAD;
      if (room > 0 && room < bytes.length) {
        this.onData(from, bytes.subarray(0, room));
        taken = room;
      }
      if (!this.keptFull) {
        this.keptFull = true;
        this.budget.full();
      }
    }
    return taken;
  }

  /**
   * The relay is done with the bytes of the last fromClient() (its read buffer is reused next):
   * when no capture took them, only the sequence numbers move on.
   */
  settle(): void {
    const unseen = this.unseen;
    if (unseen === undefined) return;
    this.unseen = undefined;
    this.frames.skip('client', unseen.length);
    this.seen.client += unseen.length;
  }

  toClient(bytes: Buffer): void {
    if (this.ended || bytes.length === 0) return;
    this.settle();
    if (this.sinks.length === 0 && !this.keptFull && this.kept !== null && this.keptBytes + bytes.length + FRAME_OVERHEAD > this.preBufferBytes) {
      // The pre-buffer fills in this read: what fits is kept, the rest only counted.
      const taken = this.keepPrefix('server', bytes);
      if (taken < bytes.length) this.onData('server', bytes.subarray(taken));
      return;
    }
    this.onData('server', bytes);
  }

  /** A FIN from one side (the client's arrived, or we sent ours to the client). */
  fin(from: Side): void {
    if (this.ended || this.finished[from]) return;
    this.settle();
    this.finished[from] = true;
    this.emit(this.frames.finBlocks(nowMicros(), from));
  }

  /** A reset from one side; nothing follows it. */
  rst(from: Side): void {
    if (this.ended) return;
    this.settle();
    this.emit(this.frames.rstBlocks(nowMicros(), from));
    this.finished.client = this.finished.server = true;
  }

  /** The connection is gone: captures are told, the pre-buffer goes back to the budget. */
  close(): void {
    if (this.ended) return;
    this.settle();
    // A side that neither sent FIN nor RST was closed by us (idle, drain): show our FIN.
    if (!this.finished.server) this.fin('server');
    this.ended = true;
    this.releaseKept();
    for (const sink of this.sinks.splice(0)) sink.flowEnded(this.flowId);
  }

  private onData(from: Side, bytes: Buffer): void {
    this.settle();
    this.seen[from] += bytes.length;
    if (this.sinks.length === 0 && (this.keptFull || this.kept === null)) {
      // Nobody captures this connection and its beginning is already kept: count, do not copy.
      this.frames.skip(from, bytes.length);
      return;
    }
    if (this.emit(this.frames.dataBlocks(nowMicros(), from, bytes))) this.keptEnd[from] = this.seen[from];
  }

  /**
   * Writes frames (their packet blocks, ./tcp-frames.ts) to the captures, and keeps them while the
   * pre-buffer has room: true when kept. The pre-buffer counts frame bytes, as the budget does.
   */
  private emit(blocks: Buffer[]): boolean {
    let kept = false;
    if (this.kept !== null && !this.keptFull) {
      let n = 0;
      for (const b of blocks) n += frameLengthOf(b);
      if (this.keptBytes + n <= this.preBufferBytes && this.budget.take(n)) {
        for (const block of blocks) this.kept.push(ownBlock(block));
        this.keptBytes += n;
        kept = true;
      } else {
        this.keptFull = true;
        this.budget.full();
      }
    }
    const sinks = this.sinks;
    if (sinks.length === 0) return kept;
    if (this.fresh.size === 0 && this.gapNotes.size === 0) {
      // The steady state: no first frame or gap note pending, every capture gets the same blocks.
      for (const block of blocks) for (const sink of sinks) sink.write(block);
      return kept;
    }
    for (const block of blocks) {
      for (const sink of sinks) {
        const fresh = this.fresh.delete(sink);
        const note = this.gapNotes.get(sink);
        if (note !== undefined) this.gapNotes.delete(sink);
        if (fresh || note !== undefined) sink.write(withComment(block, fresh && note !== undefined ? `${this.comment}; ${note}` : fresh ? this.comment : note!));
        else sink.write(block);
      }
    }
    return kept;
  }

  private releaseKept(): void {
    if (this.keptBytes > 0) this.budget.give(this.keptBytes);
    this.kept = null;
    this.keptBytes = 0;
  }
}
