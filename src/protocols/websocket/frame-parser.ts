// WebSocket framing (RFC 6455 §5.2), read as strictly as a conforming endpoint reads it, so that
// what is inspected is what the peer will accept: a frame the peer would refuse is an error here
// too (the caller fails closed). Works on pieces of any size; nothing of a payload is buffered:
// each piece of it goes to the sink as it comes, unmasked (§5.3), with its stream offset.
//
// Checked, as §5.2 / §5.4 / §5.5 and RFC 7692 §6.1 require of a receiver:
// - RSV2/RSV3 are never set (no extension we read defines them); RSV1 only on the first frame of
//   a data message, and only when permessage-deflate was negotiated;
// - opcodes 0x3-0x7 and 0xB-0xF are reserved;
// - control frames (close 0x8, ping 0x9, pong 0xA) are not fragmented and carry at most 125
//   bytes; they may come between the frames of a fragmented message;
// - a continuation frame continues a message, and a new text/binary frame does not begin inside
//   one;
// - client-to-server frames are masked, server-to-client frames are not (§5.1);
// - a 64-bit length has its most significant bit clear (and, here, fits in 2^53).

/** The header of one frame. */
export interface WebSocketFrameHead {
  fin: boolean;
  rsv1: boolean;
  opcode: number;
  masked: boolean;
  /** Payload length. */
  length: number;
}

/** Receives what the parser reads, in stream order. */
export interface WebSocketFrameSink {
  /** A frame header was read; `at` is the stream offset of its first payload byte. */
  onFrame(head: Readonly<WebSocketFrameHead>, at: number): void;
  /** Payload bytes of the current frame, unmasked (a copy when masked); `at`: their stream offset. */
  onPayload(bytes: Buffer, at: number): void;
  /** The current frame's payload ended (right after onFrame for an empty payload). */
  onFrameEnd(head: Readonly<WebSocketFrameHead>): void;
}

export interface WebSocketFrameOptions {
  /** true: every frame must be masked (the client's side); false: none may be (the server's); null: either. */
  masked: boolean | null;
  /** permessage-deflate was negotiated: RSV1 marks a compressed message. */
  rsv1: boolean;
}

export const OPCODE_CONTINUATION = 0x0;
export const OPCODE_TEXT = 0x1;
export const OPCODE_BINARY = 0x2;
export const OPCODE_CLOSE = 0x8;

/** Largest frame length accepted: offsets stay exact doubles. */
const MAX_LENGTH = Number.MAX_SAFE_INTEGER;

type Phase = 'head' | 'payload';

export class WebSocketFrameParser {
  private phase: Phase = 'head';
  /** The frame header being gathered: at most 2 + 8 + 4 bytes. */
  private readonly headBytes = new Uint8Array(14);
  private headLength = 0;
  private remaining = 0;
  private readonly mask = new Uint8Array(4);
  private maskAt = 0;
  private readonly head: WebSocketFrameHead = { fin: false, rsv1: false, opcode: 0, masked: false, length: 0 };
  /** A data message is in progress (its last frame, FIN set, has not come). */
  private inMessage = false;
  /** Why the stream is not acceptable WebSocket framing; nothing more is read once set. */
  error: string | null = null;
  /** Frames read so far. */
  frames = 0;

  constructor(private readonly options: WebSocketFrameOptions) {}

  /** Between frames and messages: nothing read is incomplete. */
  get atBoundary(): boolean {
    return this.phase === 'head' && this.headLength === 0 && !this.inMessage;
  }

  /** Feeds stream bytes (`start`: the stream offset of chunk[0]). */
  feed(chunk: Buffer, start: number, sink: WebSocketFrameSink): void {
    let i = 0;
    while (i < chunk.length && this.error === null) {
      if (this.phase === 'head') {
        this.headBytes[this.headLength++] = chunk[i++]!;
        this.tryHead(start + i, sink);
        continue;
      }
      const take = Math.min(this.remaining, chunk.length - i);
      let bytes = chunk.subarray(i, i + take);
      if (this.head.masked) {
        const out = Buffer.allocUnsafe(take);
        const mask = this.mask;
        let m = this.maskAt;
        for (let k = 0; k < take; k++) out[k] = bytes[k]! ^ mask[m++ & 3]!;
        this.maskAt = m & 3;
        bytes = out;
      }
      sink.onPayload(bytes, start + i);
      i += take;
      this.remaining -= take;
      if (this.remaining === 0) this.endFrame(sink);
    }
  }

  private endFrame(sink: WebSocketFrameSink): void {
    this.phase = 'head';
    this.headLength = 0;
    sink.onFrameEnd(this.head);
  }

  private tryHead(at: number, sink: WebSocketFrameSink): void {
    const h = this.headBytes;
    if (this.headLength < 2) return;
    const b0 = h[0]!;
    const masked = (h[1]! & 0x80) !== 0;
    const len7 = h[1]! & 0x7f;
    const extra = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
    if (this.headLength < 2 + extra + (masked ? 4 : 0)) return;
    const fin = (b0 & 0x80) !== 0;
    const rsv1 = (b0 & 0x40) !== 0;
    const opcode = b0 & 0x0f;
    let length = len7;
    if (len7 === 126) length = (h[2]! << 8) | h[3]!;
    else if (len7 === 127) {
      const big = Buffer.from(h.buffer, h.byteOffset + 2, 8).readBigUInt64BE(0);
      if (big > BigInt(MAX_LENGTH)) return this.fail(`frame length ${big} is too large`);
      length = Number(big);
    }
    if ((b0 & 0x30) !== 0) return this.fail(`RSV2/RSV3 set (first byte 0x${b0.toString(16)})`);
    if ((opcode > 0x2 && opcode < 0x8) || opcode > 0xa) return this.fail(`reserved opcode 0x${opcode.toString(16)}`);
    if (this.options.masked !== null && masked !== this.options.masked) return this.fail(this.options.masked ? 'a client frame is not masked' : 'a server frame is masked');
    if (opcode >= 0x8) {
      if (!fin) return this.fail(`fragmented control frame (opcode 0x${opcode.toString(16)})`);
      if (length > 125) return this.fail(`control frame of ${length} bytes (at most 125)`);
      if (rsv1) return this.fail('RSV1 set on a control frame');
    } else if (opcode === OPCODE_CONTINUATION) {
      if (!this.inMessage) return this.fail('continuation frame outside a message');
      if (rsv1) return this.fail('RSV1 set on a continuation frame');
    } else {
      if (this.inMessage) return this.fail('new data frame before the previous message ended');
      if (rsv1 && !this.options.rsv1) return this.fail('RSV1 set without permessage-deflate');
    }
    if (opcode < 0x8) this.inMessage = !fin;
    if (masked) this.mask.set(h.subarray(2 + extra, 6 + extra));
    this.maskAt = 0;
    const head = this.head;
    head.fin = fin;
    head.rsv1 = rsv1;
    head.opcode = opcode;
    head.masked = masked;
    head.length = length;
    this.frames++;
    this.remaining = length;
    this.phase = 'payload';
    sink.onFrame(head, at);
    if (length === 0) this.endFrame(sink);
  }

  private fail(why: string): void {
    this.error = why;
  }
}
