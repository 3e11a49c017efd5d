// Body decoding for the DLP scanners, streaming and bounded.
// - Chunked transfer coding: RFC 9112 §7.1 (chunk-size [; ext] CRLF data CRLF … 0 CRLF trailers
//   CRLF). llhttp has already accepted the framing (strict), so anything this decoder does not
//   understand is a disagreement and is reported as an error (the caller fails closed).
// - Content codings: RFC 9110 §8.4.1 gzip (RFC 1952) and deflate (the zlib format, RFC 1950; a
//   raw RFC 1951 stream is accepted too, as browsers and curl do), by fflate's streaming
//   inflaters. Input is fed in small slices so one slice can never inflate past ~1 MiB before
//   the budget and ratio checks run (a 1032:1 deflate bomb is refused after its first MiB).
import type { Gunzip, Inflate, Unzlib } from 'fflate';
import { LazyModule } from '../../lazy/lazy-module.js';

/**
 * The trailer section is header fields (RFC 9110 §6.5) the decoder hands to the scanner line by
 * line; llhttp bounds a head, and this bounds what one section may make the decoder keep.
 */
export const MAX_TRAILER_SECTION = 16 * 1024;

export class ChunkedDecoder {
  private state: 'size' | 'ext' | 'size-lf' | 'data' | 'data-cr' | 'data-lf' | 'trailer' | 'trailer-lf' | 'done' = 'size';
  private size = 0;
  private sizeDigits = 0;
  private left = 0;
  private lineEmpty = true;
  /** Raw bytes pushed before this call (offsets of `lineStart`). */
  private pushed = 0;
  /** The trailer line being read: its pieces, and its raw offset (-1 outside a trailer line). */
  private line: Buffer[] = [];
  private trailerBytes = 0;
  /** Raw offset (in all bytes pushed) where the unfinished trailer line begins; -1 when none is. */
  lineStart = -1;
  /** Trailer field lines completed by the last push (latin1, without CRLF). */
  readonly trailerLines: string[] = [];
  error: string | null = null;

  get done(): boolean {
    return this.state === 'done';
  }

  /** What has come of the unfinished trailer line ('' when none is unfinished). */
  partialTrailerLine(): string {
    return this.lineStart < 0 ? '' : Buffer.concat(this.line).toString('latin1');
  }

  /** Feeds raw chunked bytes; returns the data bytes they carry (views into `raw`). */
  push(raw: Buffer): Buffer[] {
    const out: Buffer[] = [];
    this.trailerLines.length = 0;
    const base = this.pushed;
    this.pushed += raw.length;
    // A trailer line that began in an earlier push: its part in this push starts at 0.
    let lineFrom = this.lineStart >= 0 ? 0 : -1;
    let i = 0;
    while (i < raw.length && this.error === null && this.state !== 'done') {
      const c = raw[i]!;
      switch (this.state) {
        case 'size': {
          const v = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
          if (v >= 0) {
            if (++this.sizeDigits > 12) this.error = 'chunk size too long';
            this.size = this.size * 16 + v;
            i++;
          } else if (this.sizeDigits === 0) this.error = 'chunk size expected';
          else if (c === 0x0d) {
            this.state = 'size-lf';
            i++;
          } else if (c === 0x3b || c === 0x20 || c === 0x09) {
            this.state = 'ext';
            i++;
          } else this.error = 'bad chunk size';
          break;
        }
        case 'ext':
          if (c === 0x0d) this.state = 'size-lf';
          i++;
          break;
        case 'size-lf':
          if (c !== 0x0a) {
            this.error = 'LF expected after chunk size';
            break;
          }
          i++;
          if (this.size === 0) {
            this.state = 'trailer';
            this.lineEmpty = true;
          } else {
            this.left = this.size;
            this.state = 'data';
          }
          this.size = 0;
          this.sizeDigits = 0;
          break;
        case 'data': {
          const n = Math.min(this.left, raw.length - i);
          out.push(raw.subarray(i, i + n));
          this.left -= n;
          i += n;
          if (this.left === 0) this.state = 'data-cr';
          break;
        }
        case 'data-cr':
          if (c !== 0x0d) this.error = 'CRLF expected after chunk data';
          else {
            this.state = 'data-lf';
            i++;
          }
          break;
        case 'data-lf':
          if (c !== 0x0a) this.error = 'CRLF expected after chunk data';
          else {
            this.state = 'size';
            i++;
          }
          break;
        case 'trailer':
          if (c === 0x0d) {
            this.state = 'trailer-lf';
            if (lineFrom >= 0) this.line.push(Buffer.from(raw.subarray(lineFrom, i))); // a copy: the LF may come in the next read
          } else if (this.lineEmpty) {
            this.lineEmpty = false;
            this.lineStart = base + i;
            lineFrom = i;
          }
          i++;
          if (++this.trailerBytes > MAX_TRAILER_SECTION) this.error = `trailer section larger than ${MAX_TRAILER_SECTION} bytes`;
          break;
        case 'trailer-lf':
          if (c !== 0x0a) {
            this.error = 'LF expected in trailer section';
            break;
          }
          i++;
          if (this.lineEmpty) this.state = 'done';
          else {
            this.trailerLines.push(Buffer.concat(this.line).toString('latin1'));
            this.line = [];
            this.lineStart = -1;
            lineFrom = -1;
            this.state = 'trailer';
            this.lineEmpty = true;
          }
          break;
        default:
          i++;
      }
    }
    // The line goes on in the next push: keep its part of this one (a copy: `raw` is a read buffer).
    if (this.state === 'trailer' && lineFrom >= 0 && this.error === null) this.line.push(Buffer.from(raw.subarray(lineFrom)));
    return out;
  }
}

/** The inflaters: loaded by the first compressed body or WebSocket message DLP scans. */
export const fflate = new LazyModule<typeof import('fflate')>('fflate', 'DLP of compressed content (gzip, deflate, permessage-deflate)');

/** Slice of compressed input fed at once: bounds what one call can inflate to (~1 MiB). */
const INFLATE_SLICE = 1024;

export interface ContentDecoderLimits {
  /** Stop after this many decoded bytes (the scan budget). */
  maxOutput: number;
  /** Decoded/encoded above this (after the first 64 KiB decoded) is a decompression bomb. */
  maxRatio: number;
}

/** One content coding layer (gzip or deflate), streaming, bounded. */
export class ContentDecoder {
  private inflater: Gunzip | Inflate | Unzlib | null = null;
  /** deflate: the first two bytes tell a zlib stream (RFC 1950 header) from a raw one (RFC 1951). */
  private head: Buffer | null = null;
  private readonly ondata = (data: Uint8Array): void => {
    this.pending.push(data);
    this.output += data.length;
  };
  private pending: Uint8Array[] = [];
  private input = 0;
  output = 0;
  error: string | null = null;
  /** Output reached the budget: the rest is not decoded. */
  capped = false;
  /** Refused as a decompression bomb. */
  bomb = false;

  constructor(coding: 'gzip' | 'deflate', private readonly limits: ContentDecoderLimits) {
    if (coding === 'gzip') this.inflater = new (fflate.get().Gunzip)(this.ondata);
    else this.head = Buffer.alloc(0);
  }

  push(input: Uint8Array, final: boolean): Buffer[] {
    const out: Buffer[] = [];
    if (this.error !== null || this.capped || this.bomb) return out;
    let bytes = input;
    if (this.inflater === null) {
      const head = Buffer.concat([this.head as Buffer, input]);
      if (head.length < 2 && !final) {
        this.head = head;
        return out;
      }
      const zlib = head.length >= 2 && (head[0]! & 0x0f) === 8 && ((head[0]! << 8) | head[1]!) % 31 === 0;
      this.inflater = zlib ? new (fflate.get().Unzlib)(this.ondata) : new (fflate.get().Inflate)(this.ondata);
      this.head = null;
      bytes = head;
    }
    const inflater = this.inflater;
    for (let i = 0; i < bytes.length || (final && i === 0); i += INFLATE_SLICE) {
      const slice = bytes.subarray(i, i + INFLATE_SLICE);
      this.input += slice.length;
      try {
        inflater.push(slice, final && i + INFLATE_SLICE >= bytes.length);
      } catch (err) {
        this.error = `bad ${err instanceof Error ? err.message : String(err)}`;
        return out;
      }
      for (const d of this.pending) out.push(Buffer.from(d.buffer, d.byteOffset, d.byteLength));
      this.pending = [];
      if (this.output > 65536 && this.output / Math.max(1, this.input) > this.limits.maxRatio) {
        this.bomb = true;
        return out;
      }
      if (this.output >= this.limits.maxOutput) {
        this.capped = true;
        return out;
      }
    }
    return out;
  }
}

/**
 * gRPC's Length-Prefixed-Message framing (gRPC over HTTP/2, PROTOCOL-HTTP2.md: Compressed-Flag
 * (1 byte), Message-Length (4 bytes, big-endian), Message): yields each message's bytes — views
 * of the input when uncompressed; inflated, bounded, when the Compressed-Flag is 1 and the
 * call's `grpc-encoding` is gzip or deflate (each message is compressed on its own). A
 * compressed message in any other encoding (snappy, zstd, identity) cannot be read: error.
 */
export class GrpcMessageDecoder {
  private head = Buffer.alloc(5);
  private headLength = 0;
  private left = 0;
  private inflater: ContentDecoder | null = null;
  private readonly coding: 'gzip' | 'deflate' | null;
  error: string | null = null;
  /** A message inflated past the budget: the rest is not decoded. */
  capped = false;
  /** A message inflated past the ratio. */
  bomb = false;

  constructor(encoding: string | undefined, private readonly limits: ContentDecoderLimits) {
    const e = encoding?.trim().toLowerCase();
    this.coding = e === 'gzip' ? 'gzip' : e === 'deflate' ? 'deflate' : null;
    this.encoding = e ?? 'identity';
  }

  private readonly encoding: string;

  push(raw: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let i = 0;
    while (i < raw.length && this.error === null && !this.capped && !this.bomb) {
      if (this.headLength < 5) {
        const n = Math.min(5 - this.headLength, raw.length - i);
        raw.copy(this.head, this.headLength, i, i + n);
        this.headLength += n;
        i += n;
        if (this.headLength < 5) break;
        const flag = this.head[0]!;
        this.left = this.head.readUInt32BE(1);
        if (flag > 1) {
          this.error = `bad gRPC compressed flag ${flag}`;
          break;
        }
        if (flag === 1) {
          if (this.coding === null) {
            this.error = `gRPC message compressed with grpc-encoding ${this.encoding}`;
            break;
          }
          this.inflater = new ContentDecoder(this.coding, this.limits);
        } else this.inflater = null;
        if (this.left === 0) this.endMessage(out);
        continue;
      }
      const n = Math.min(this.left, raw.length - i);
      const part = raw.subarray(i, i + n);
      i += n;
      this.left -= n;
      if (this.inflater === null) out.push(part);
      else this.inflate(part, false, out);
      if (this.left === 0) this.endMessage(out);
    }
    return out;
  }

  private endMessage(out: Buffer[]): void {
    if (this.inflater !== null) this.inflate(Buffer.alloc(0), true, out);
    this.inflater = null;
    this.headLength = 0;
  }

  private inflate(part: Buffer, final: boolean, out: Buffer[]): void {
    const inflater = this.inflater as ContentDecoder;
    for (const b of inflater.push(part, final)) out.push(b);
    if (inflater.error !== null) this.error = `gRPC message: ${inflater.error}`;
    if (inflater.bomb) this.bomb = true;
    if (inflater.capped) this.capped = true;
  }
}
