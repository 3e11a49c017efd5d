// WebSocket frames for the DLP tests: built by hand (RFC 6455 §5.2), masked or not, and read back
// (what a peer would get: the messages completed, in order) to prove what reached it.
import { randomBytes } from 'node:crypto';
import { WebSocketFrameParser, type WebSocketFrameHead, type WebSocketFrameSink } from '../../../src/protocols/websocket/frame-parser.js';

export interface FrameSpec {
  opcode: number;
  payload: Buffer | string;
  fin?: boolean;
  rsv1?: boolean;
  /** Mask key (4 bytes), or true for a random one; absent: unmasked (a server's frame). */
  mask?: Buffer | true;
}

export function frame(spec: FrameSpec): Buffer {
  const payload = Buffer.from(spec.payload);
  const len = payload.length;
  const b0 = (spec.fin === false ? 0 : 0x80) | (spec.rsv1 === true ? 0x40 : 0) | spec.opcode;
  const m = spec.mask === undefined ? 0 : 0x80;
  let head: Buffer;
  if (len < 126) head = Buffer.from([b0, m | len]);
  else if (len < 65536) head = Buffer.from([b0, m | 126, len >> 8, len & 0xff]);
  else {
    head = Buffer.alloc(10);
    head[0] = b0;
    head[1] = m | 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  if (spec.mask === undefined) return Buffer.concat([head, payload]);
  const key = spec.mask === true ? randomBytes(4) : spec.mask;
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] = body[i]! ^ key[i & 3]!;
  return Buffer.concat([head, key, body]);
}

/** A client (masked) message in fragments: text opcode on the first, continuation after, FIN on the last. */
export function clientMessage(parts: Array<Buffer | string>, opts: { rsv1?: boolean; between?: Buffer[] } = {}): Buffer {
  const out: Buffer[] = [];
  parts.forEach((p, i) => {
    out.push(frame({ opcode: i === 0 ? 0x1 : 0x0, payload: p, fin: i === parts.length - 1, rsv1: i === 0 && opts.rsv1 === true, mask: true }));
    if (i < parts.length - 1 && opts.between?.[i] !== undefined) out.push(opts.between[i]!);
  });
  return Buffer.concat(out);
}

/** What a receiver reads from a stream: completed data messages (payload as sent, not inflated), control frames, and the message still open. */
export class FrameLog implements WebSocketFrameSink {
  readonly messages: Buffer[] = [];
  readonly control: Array<[number, Buffer]> = [];
  open: Buffer[] | null = null;
  private current: Buffer[] = [];
  private opcode = 0;
  readonly parser: WebSocketFrameParser;

  constructor(client: boolean, rsv1 = false) {
    this.parser = new WebSocketFrameParser({ masked: client, rsv1 });
  }

  feed(bytes: Buffer): this {
    this.parser.feed(bytes, 0, this);
    return this;
  }

  onFrame(head: Readonly<WebSocketFrameHead>): void {
    this.opcode = head.opcode;
    this.current = [];
    if (head.opcode !== 0 && head.opcode < 8) this.open = [];
  }

  onPayload(bytes: Buffer): void {
    this.current.push(Buffer.from(bytes));
  }

  onFrameEnd(head: Readonly<WebSocketFrameHead>): void {
    if (this.opcode >= 8) {
      this.control.push([this.opcode, Buffer.concat(this.current)]);
      return;
    }
    this.open!.push(...this.current);
    if (head.fin) {
      this.messages.push(Buffer.concat(this.open!));
      this.open = null;
    }
  }
}
