// DLP for one direction of a WebSocket (after an HTTP/1 Upgrade the server accepted): the frames
// (RFC 6455, read strictly by the protocol's frame parser) are unmasked and put back together
// into messages, inflated when the message is compressed (RFC 7692 permessage-deflate), and each
// message is scanned as a body is: a value split across frames, with control frames between
// them, is found once it is complete. Control frames (close reason, ping and pong data) are
// scanned too, each as a value of its own. Pure: bytes in, hits out.
//
// Bounds (a peer can make us hold nothing it chooses):
// - nothing of a payload is buffered: it is scanned as it streams (the scanner keeps only the
//   tail a match may still extend across);
// - permessage-deflate: one inflate context per direction, kept across messages unless the
//   sender resets its own (`*_no_context_takeover`: then one per message). Compressed input is
//   inflated in 1 KiB slices, so no call inflates far past the checks: a message that inflates
//   past the scan budget (`maxBytes`), or past `maxRatio` times its compressed size once over
//   64 KiB, is refused (a decompression bomb) — its end, and what the context makes of every
//   later message, could not be known without inflating it all;
// - an uncompressed message longer than the budget is scanned up to it (recorded as truncated);
//   the next message is scanned afresh.
// Whatever cannot be read (bad framing, a bad deflate stream, a bomb) is refused: the caller
// fails closed (the `undecodable` hit).
import type { Inflate } from 'fflate';
import { WebSocketFrameParser, type WebSocketFrameHead, type WebSocketFrameSink } from '../../protocols/websocket/frame-parser.js';
import type { DeflateParams } from '../../protocols/websocket/extensions.js';
import { TextScanner, type DlpHit, type DlpWhere } from './scanner.js';
import { fflate } from './decoders.js';
import type { Sensor } from './sensors.js';

/** Compressed input inflated per call (as for content codings: bounds one call's output). */
const INFLATE_SLICE = 1024;
/** RFC 7692 §7.2.2: the sender removed these four octets from each compressed message's end. */
const DEFLATE_TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);
/** Inflated bytes of a message before the ratio is judged (small messages compress well). */
const RATIO_FLOOR = 64 * 1024;
const NO_HITS: DlpHit[] = [];

export interface WebSocketScanOptions {
  /** The sender is the client: its frames are masked (RFC 6455 §5.1). */
  client: boolean;
  /** permessage-deflate as this direction's sender uses it; null when not negotiated. */
  deflate: DeflateParams | null;
  /** Decoded bytes scanned per message at most. */
  maxBytes: number;
  /** Inflated/compressed past which a message is a decompression bomb. */
  maxRatio: number;
}

/**
 * One message (or control frame) being scanned: the text scanner, and where its decoded bytes
 * came from in the stream — [decoded start, stream start, length, coded] — so the hold (a
 * decoded offset) maps back to stream bytes. Inflated bytes map to the start of the compressed
 * slice whose push produced them.
 */
class PayloadScan {
  readonly text: TextScanner;
  private readonly pieces: number[] = [];
  scanned = 0;
  truncated = false;

  constructor(sensors: readonly Sensor[], where: DlpWhere) {
    this.text = new TextScanner(sensors, where);
  }

  push(bytes: Buffer, streamAt: number, coded: boolean, maxBytes: number, hits: DlpHit[]): void {
    if (this.truncated) return;
    let p = bytes;
    const room = maxBytes - this.scanned;
    if (p.length >= room) {
      p = p.subarray(0, room);
      this.truncated = true;
    }
    if (p.length > 0) this.pieces.push(this.scanned, streamAt, p.length, coded ? 1 : 0);
    this.scanned += p.length;
    this.text.push(p.toString('latin1'), this.truncated, hits);
    const pieces = this.pieces;
    let drop = 0;
    while (drop < pieces.length - 4 && pieces[drop]! + pieces[drop + 2]! <= this.text.keptFrom) drop += 4;
    if (drop > 0) pieces.splice(0, drop);
  }

  end(hits: DlpHit[]): void {
    if (!this.truncated) this.text.push('', true, hits);
    this.truncated = true; // nothing more: no hold
  }

  /** The stream offset from which bytes may carry an unfinished value; +Infinity: none. */
  get holdAt(): number {
    if (this.truncated) return Number.POSITIVE_INFINITY;
    const at = this.text.holdFrom;
    if (at >= this.scanned) return Number.POSITIVE_INFINITY;
    const pieces = this.pieces;
    for (let i = pieces.length - 4; i >= 0; i -= 4) {
      const dec = pieces[i]!;
      if (at < dec) continue;
      return pieces[i + 3] === 1 ? pieces[i + 1]! : pieces[i + 1]! + (at - dec);
    }
    return pieces.length > 0 ? pieces[1]! : Number.POSITIVE_INFINITY;
  }
}

export class WebSocketScanner implements WebSocketFrameSink {
  private readonly parser: WebSocketFrameParser;
  private message: PayloadScan | null = null;
  private control: PayloadScan | null = null;
  /** The message in progress is compressed (RSV1 on its first frame). */
  private compressed = false;
  private inflater: Inflate | null = null;
  private readonly inflated: Uint8Array[] = [];
  private readonly ondata = (data: Uint8Array): void => {
    this.inflated.push(data);
  };
  private messageIn = 0;
  private messageOut = 0;
  /** Stream offset just past the last payload byte read. */
  private streamAt = 0;
  /** The hits of the push in progress. */
  private hits: DlpHit[] = NO_HITS;
  /** Why this direction cannot be read; nothing more is scanned once set. */
  refused: string | null = null;
  /** Data messages begun so far. */
  messages = 0;
  /** Decoded bytes scanned of the last message cut short by the budget, if one was. */
  truncatedAt: number | null = null;

  /** @param from stream offset of the first WebSocket byte (bytes before it are HTTP) */
  constructor(
    private readonly sensors: readonly Sensor[],
    private readonly where: DlpWhere,
    private readonly options: WebSocketScanOptions,
    private readonly from: number,
  ) {
    this.parser = new WebSocketFrameParser({ masked: options.client, rsv1: options.deflate !== null });
    this.streamAt = from;
  }

  /** Stream bytes (`start`: the stream offset of chunk[0]); hits go to `hits`. */
  push(chunk: Buffer, start: number, hits: DlpHit[]): void {
    if (this.refused !== null) return;
    const skip = Math.max(0, this.from - start);
    if (skip >= chunk.length) return;
    this.hits = hits;
    this.parser.feed(skip > 0 ? chunk.subarray(skip) : chunk, start + skip, this);
    this.hits = NO_HITS;
    if (this.parser.error !== null && this.refused === null) this.refuse(`WebSocket framing: ${this.parser.error}`, hits);
  }

  /** The sender paused: what the next byte could still change is decided now (TextScanner.settle). */
  settle(hits: DlpHit[]): void {
    if (this.refused !== null) return;
    this.message?.text.settle(hits);
    this.control?.text.settle(hits);
  }

  /** This direction cannot be read from here on (for a reason found outside the frames). */
  refuse(why: string, hits: DlpHit[]): void {
    if (this.refused !== null) return;
    this.refused = why;
    this.message = null;
    this.control = null;
    this.inflater = null;
    hits.push({ sensor: 'undecodable', where: this.where, offset: 0, sample: why });
  }

  /** Stream offset from which bytes may carry an unfinished value: they should wait. +Infinity: none. */
  get holdAt(): number {
    if (this.refused !== null) return Number.POSITIVE_INFINITY;
    const m = this.message?.holdAt ?? Number.POSITIVE_INFINITY;
    const c = this.control?.holdAt ?? Number.POSITIVE_INFINITY;
    return m < c ? m : c;
  }

  onFrame(head: Readonly<WebSocketFrameHead>, at: number): void {
    this.streamAt = at;
    if (this.refused !== null) return;
    if (head.opcode >= 0x8) {
      this.control = new PayloadScan(this.sensors, this.where);
      return;
    }
    if (head.opcode === 0x0) return; // continues the message in progress
    this.messages++;
    this.message = new PayloadScan(this.sensors, this.where);
    this.compressed = head.rsv1;
    this.messageIn = 0;
    this.messageOut = 0;
    if (this.compressed && (this.inflater === null || this.options.deflate!.noContextTakeover)) this.inflater = new (fflate.get().Inflate)(this.ondata);
  }

  onPayload(bytes: Buffer, at: number): void {
    this.streamAt = at + bytes.length;
    if (this.refused !== null) return;
    if (this.control !== null) {
      this.control.push(bytes, at, false, 125, this.hits);
      return;
    }
    const message = this.message;
    if (message === null) return;
    if (this.compressed) this.inflate(message, bytes, at);
    else message.push(bytes, at, false, this.options.maxBytes, this.hits);
  }

  onFrameEnd(head: Readonly<WebSocketFrameHead>): void {
    if (this.refused !== null) return;
    if (head.opcode >= 0x8) {
      this.control?.end(this.hits);
      this.control = null;
      return;
    }
    const message = this.message;
    if (!head.fin || message === null) return;
    if (this.compressed) this.inflate(message, DEFLATE_TAIL, this.streamAt);
    if (this.refused !== null) return;
    if (message.truncated && this.truncatedAt === null) this.truncatedAt = message.scanned;
    message.end(this.hits);
    this.message = null;
    if (this.options.deflate?.noContextTakeover === true) this.inflater = null;
  }

  /** Inflates a piece of a compressed message (stream offset `at`) and scans what it yields. */
  private inflate(message: PayloadScan, bytes: Buffer, at: number): void {
    const inflater = this.inflater!;
    const { maxBytes, maxRatio } = this.options;
    for (let i = 0; i < bytes.length; i += INFLATE_SLICE) {
      const slice = bytes.subarray(i, i + INFLATE_SLICE);
      this.messageIn += slice.length;
      try {
        inflater.push(slice, false);
      } catch (err) {
        this.inflated.length = 0;
        return this.refuse(`permessage-deflate: bad deflate data (${err instanceof Error ? err.message : String(err)})`, this.hits);
      }
      for (const d of this.inflated) this.messageOut += d.length;
      if (this.messageOut > maxBytes) {
        this.inflated.length = 0;
        return this.refuse(`permessage-deflate: a message inflates past ${maxBytes} bytes (decompression bomb)`, this.hits);
      }
      if (this.messageOut > RATIO_FLOOR && this.messageOut / this.messageIn > maxRatio) {
        this.inflated.length = 0;
        return this.refuse(`permessage-deflate: decompression bomb (${this.messageOut} bytes from ${this.messageIn})`, this.hits);
      }
      for (const d of this.inflated) message.push(Buffer.from(d.buffer, d.byteOffset, d.byteLength), at + i, true, maxBytes, this.hits);
      this.inflated.length = 0;
    }
  }
}
