// Reads the payload out of WebSocket frames (RFC 6455 §5.2) so the bytes inside a WebSocket
// can be checked like any other payload. Client-to-server frames are masked (§5.3): the SSH
// banner of a client tunnelling SSH over a WebSocket is only visible after unmasking.
// Only data frames (text 0x1, binary 0x2, continuation 0x0) are taken; control frames
// (close, ping, pong) are skipped. Works on pieces of any size; stops once the window is full.
import type { PayloadWindow } from './payload-window.js';

type Phase = 'head' | 'payload';

export class WebSocketPayloadReader {
  private phase: Phase = 'head';
  /** The frame header being gathered: at most 2 + 8 + 4 bytes. */
  private readonly head = new Uint8Array(14);
  private headLength = 0;
  private remaining = 0;
  private readonly mask = new Uint8Array(4);
  private masked = false;
  private maskAt = 0;
  private keep = false;
  /** Set when a frame header made no sense: the stream is not WebSocket framing. */
  malformed = false;

  /** Feeds stream bytes; unmasked data-frame payload goes into `window`. */
  feed(chunk: Buffer, window: PayloadWindow): void {
    let i = 0;
    while (i < chunk.length && !window.full && !this.malformed) {
      if (this.phase === 'head') {
        this.head[this.headLength++] = chunk[i++]!;
        this.tryHead();
        continue;
      }
      const take = Math.min(this.remaining, chunk.length - i);
      if (this.keep) {
        for (let k = 0; k < take && !window.full; k++) {
          const b = chunk[i + k]!;
          window.appendByte(this.masked ? b ^ this.mask[this.maskAt++ & 3]! : b);
        }
      }
      i += take;
      this.remaining -= take;
      if (this.remaining === 0) this.startHead();
    }
  }

  private startHead(): void {
    this.phase = 'head';
    this.headLength = 0;
  }

  private tryHead(): void {
    const h = this.head;
    if (this.headLength < 2) return;
    const opcode = h[0]! & 0x0f;
    if ((opcode > 0x2 && opcode < 0x8) || opcode > 0xa) {
      this.malformed = true; // reserved opcodes
      return;
    }
    const masked = (h[1]! & 0x80) !== 0;
    const len7 = h[1]! & 0x7f;
    const extra = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
    const need = 2 + extra + (masked ? 4 : 0);
    if (this.headLength < need) return;
    let length = len7;
    if (len7 === 126) length = (h[2]! << 8) | h[3]!;
    else if (len7 === 127) length = Number(Buffer.from(h.subarray(2, 10)).readBigUInt64BE(0) & 0x1fffffffffffffn);
    this.masked = masked;
    if (masked) this.mask.set(h.subarray(2 + extra, 6 + extra));
    this.maskAt = 0;
    this.keep = opcode <= 0x2;
    this.remaining = length;
    this.phase = 'payload';
    if (length === 0) this.startHead();
  }
}
