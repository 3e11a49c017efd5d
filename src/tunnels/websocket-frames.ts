// Reads the payload out of WebSocket frames (RFC 6455 §5.2) so the bytes inside a WebSocket
// can be checked like any other payload. Client-to-server frames are masked (§5.3): the SSH
// banner of a client tunnelling SSH over a WebSocket is only visible after unmasking.
// Only data frames (text 0x1, binary 0x2, continuation 0x0) are taken; control frames
// (close, ping, pong) are skipped. Framing is read by the protocol's frame parser (the one DLP
// uses), leniently as to masking and RSV1: the inspector does not know which side it reads nor
// what the handshake negotiated. Works on pieces of any size; stops once the window is full.
import { WebSocketFrameParser, type WebSocketFrameHead, type WebSocketFrameSink } from '../protocols/websocket/frame-parser.js';
import type { PayloadWindow } from './payload-window.js';

export class WebSocketPayloadReader implements WebSocketFrameSink {
  private readonly parser = new WebSocketFrameParser({ masked: null, rsv1: true });
  private keep = false;
  private window: PayloadWindow | null = null;

  /** Set when a frame header made no sense: the stream is not WebSocket framing. */
  get malformed(): boolean {
    return this.parser.error !== null;
  }

  /** Feeds stream bytes; unmasked data-frame payload goes into `window`. */
  feed(chunk: Buffer, window: PayloadWindow): void {
    this.window = window;
    this.parser.feed(chunk, 0, this);
    this.window = null;
  }

  onFrame(head: Readonly<WebSocketFrameHead>): void {
    this.keep = head.opcode <= 0x2;
  }

  onPayload(bytes: Buffer): void {
    const window = this.window;
    if (!this.keep || window === null || window.full) return;
    window.append(bytes);
  }

  onFrameEnd(): void {}
}
