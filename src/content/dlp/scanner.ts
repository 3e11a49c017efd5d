// Streaming DLP scanning of one message part (a body, or one header/query value). Pure: bytes in,
// hits out; it knows nothing of sockets, rules or records.
//
// Bodies arrive in arbitrary pieces. Each push scans the new text together with the tail of the
// previous window (as long as the longest match any active sensor can have, plus its context),
// so a value split across any number of pieces is found once it is complete. A match that
// touches the end of the text seen so far is provisional (the next byte may extend it: a 16-digit
// card followed by a 17th digit is not a card) and is decided on the next push or at the end.
// Text is latin1: one character per byte, so offsets are byte offsets of the decoded body.
import type { HeaderList } from '../../protocols/types.js';
import { ChunkedDecoder, ContentDecoder, GrpcMessageDecoder } from './decoders.js';
import type { Sensor } from './sensors.js';

export type DlpWhere = 'request-body' | 'response-body' | 'header' | 'query';

export interface DlpHit {
  /** Sensor name; 'undecodable' when the body could not be decoded (bad framing, unknown coding, bomb). */
  sensor: string;
  where: DlpWhere;
  /** Offset of the match in the decoded body (or in the header value / query string). */
  offset: number;
  /** The match masked (e.g. `4111 **** **** 1111`); never the value. */
  sample: string;
  /** The header's name, for `header` hits. */
  field?: string;
}

export class TextScanner {
  /** A match touches the end of the text so far: the next byte decides it. */
  pending = false;
  /**
   * Absolute offset from which the text so far may end inside a value (a match the next byte
   * decides, or the first digits of a card the next bytes may complete): the receiver should not
   * get it yet. The end of the text when nothing is unfinished.
   */
  holdFrom = 0;
  private tail = '';
  /** Absolute offset of the first character of `tail`. */
  private tailStart = 0;

  /** Offset of the first character still kept: nothing before it is held or decided again. */
  get keptFrom(): number {
    return this.tailStart;
  }
  private readonly reported = new Set<string>();
  private readonly overlap: number;

  private readonly lookbehind: number;

  /** @param field the header name, when the text is one header's value */
  constructor(private readonly sensors: readonly Sensor[], private readonly where: DlpWhere, private readonly field?: string) {
    let longest = 0;
    let lookbehind = 0;
    for (const s of sensors) {
      longest = Math.max(longest, s.maxLength + (s.lookbehind ?? 0));
      lookbehind = Math.max(lookbehind, s.lookbehind ?? 0);
    }
    this.lookbehind = lookbehind;
    // The match and the context its sensor reads before it, a character of context before that
    // (lookbehind) and two after (lookahead).
    this.overlap = longest + 3;
  }

  /**
   * The sender paused with a value possibly unfinished at the end (the hold timer): matches the
   * next byte could still have extended are decided now, as if the text ended here — failing
   * closed, since a sender could otherwise pause to get a complete value past. What is only the
   * beginning of a value stays undecided (it is released: its end, when it comes, still hits).
   */
  settle(hits: DlpHit[]): void {
    if (!this.pending) return;
    this.pending = false;
    const text = this.tail;
    const base = this.tailStart;
    const from = base > 0 && text.length > 0 ? 1 : 0;
    for (const sensor of this.sensors) {
      for (const m of sensor.find(text, from, this.field)) {
        const key = `${sensor.name}@${base + m.index}`;
        if (this.reported.has(key)) continue;
        this.reported.add(key);
        hits.push({ sensor: sensor.name, where: this.where, offset: base + m.index, sample: m.sample });
      }
    }
    this.holdFrom = base + text.length;
  }

  /** Scans `chunk` (latin1 text) following what was pushed before. */
  push(chunk: string, final: boolean, hits: DlpHit[]): void {
    const text = this.tail.length === 0 ? chunk : this.tail + chunk;
    const base = this.tailStart;
    let keepFrom = Math.max(0, text.length - this.overlap);
    this.pending = false;
    let pendingAt = text.length;
    // A kept tail's first character is context only (the tail may begin inside a longer run of
    // digits): no match may start there, or `…64767655123456789` would be read as a card.
    const from = base > 0 && this.tail.length > 0 ? 1 : 0;
    for (const sensor of this.sensors) {
      // Each sensor rescans only as much of the kept tail as its own longest match (plus its
      // context) could reach into: a match that started earlier was decided before (or is the
      // deferred one, which starts within that reach). 1460-byte reads would otherwise rescan
      // the JWT sensor's 1 KiB reach for every sensor.
      const reach = Math.max(from, this.tail.length - sensor.maxLength - 3);
      for (const m of sensor.find(text, reach, this.field)) {
        const end = m.index + m.length;
        if (!final && end > text.length - 2) {
          // Decided once more text is in, with the same context before it.
          keepFrom = Math.min(keepFrom, Math.max(0, m.index - 1 - this.lookbehind));
          this.pending = true;
          if (m.index < pendingAt) pendingAt = m.index;
          continue;
        }
        const key = `${sensor.name}@${base + m.index}`;
        if (this.reported.has(key)) continue;
        this.reported.add(key);
        hits.push({ sensor: sensor.name, where: this.where, offset: base + m.index, sample: m.sample });
      }
    }
    let hold = text.length;
    if (!final) {
      for (const sensor of this.sensors) {
        if (sensor.partial === undefined) continue;
        const at = sensor.partial(text, Math.max(from, text.length - sensor.maxLength));
        if (at >= 0 && at < hold) hold = at;
      }
    }
    if (pendingAt < hold) hold = pendingAt;
    this.holdFrom = base + hold;
    this.tail = final ? '' : text.slice(keepFrom);
    this.tailStart = base + keepFrom;
    // Only matches that can still be seen again need remembering.
    if (this.reported.size > 0) {
      for (const key of this.reported) {
        if (Number(key.slice(key.lastIndexOf('@') + 1)) < this.tailStart) this.reported.delete(key);
      }
    }
  }
}

export interface MessageScanOptions {
  /** Transfer coding chunked (HTTP/1): the bytes pushed are the raw chunked body. */
  chunked: boolean;
  /** Content-Encoding field values (RFC 9110 §8.4), in the order applied. */
  contentEncoding: readonly string[];
  /** A gRPC call (content-type application/grpc…): its messages are unframed, and inflated per `grpc-encoding`. */
  grpc?: { encoding: string | undefined };
  /**
   * Chunked: scans one field of the trailer section (RFC 9110 §6.5), as the head's fields are
   * (null: trailers are not scanned, `scan` has no `header`).
   */
  trailerField?: TrailerFieldScan | null;
  /** Decoded bytes scanned at most (the rest is not scanned: `truncated`). */
  maxBytes: number;
  maxRatio: number;
}

export type TrailerFieldScan = (name: string, value: string, hits: DlpHit[]) => void;

const MAX_CODINGS = 2;

/** A trailer field line `name: value` (RFC 9112 §5: no white space before the colon; OWS around the value). */
function scanTrailerLine(scan: TrailerFieldScan, line: string, hits: DlpHit[]): void {
  const colon = line.indexOf(':');
  // No colon: llhttp refused the message already; the whole line is scanned as a value.
  const name = colon < 0 ? '' : line.slice(0, colon).toLowerCase();
  scan(name, (colon < 0 ? line : line.slice(colon + 1)).trim(), hits);
}

/** A body, pushed as raw message bytes (after the head), decoded and scanned as it streams. */
export class MessageScanner {
  private readonly chunked: ChunkedDecoder | null;
  private readonly grpc: GrpcMessageDecoder | null;
  private readonly codings: ContentDecoder[] = [];
  private readonly text: TextScanner;
  /** Decoded bytes scanned so far. */
  scanned = 0;
  /** Raw message bytes pushed so far. */
  private rawPushed = 0;
  /**
   * Recent decoded pieces and the raw offset each came from (the hold is mapped back to raw
   * bytes): [decoded start, raw start, length, coded]. A coded piece (gzip, deflate) maps as a
   * whole to the start of the raw bytes whose push produced it: which compressed bit made which
   * byte is not tracked.
   */
  private readonly pieces: number[] = [];
  /**
   * Raw offset (in the bytes pushed) from which the body may end inside a value: the receiver
   * should not get those bytes until the next push or the end decides (TextScanner.holdFrom).
   * All pushed bytes (rawPushed) when nothing is unfinished.
   */
  holdRaw = 0;
  truncated = false;
  /** Why the body could not be decoded, if it could not. */
  refused: string | null = null;
  private finished = false;

  constructor(sensors: readonly Sensor[], private readonly where: DlpWhere, private readonly options: MessageScanOptions) {
    this.chunked = options.chunked ? new ChunkedDecoder() : null;
    this.grpc = options.grpc === undefined ? null : new GrpcMessageDecoder(options.grpc.encoding, { maxOutput: options.maxBytes, maxRatio: options.maxRatio });
    this.text = new TextScanner(sensors, where);
    const codings = options.contentEncoding
      .flatMap((v) => v.split(','))
      .map((c) => c.trim().toLowerCase())
      .filter((c) => c !== '' && c !== 'identity');
    if (codings.length > MAX_CODINGS) this.refused = `content-encoding with ${codings.length} codings`;
    // Applied in order: undone last-first.
    for (const c of codings.reverse()) {
      if (c === 'gzip' || c === 'x-gzip') this.codings.push(new ContentDecoder('gzip', { maxOutput: options.maxBytes, maxRatio: options.maxRatio }));
      else if (c === 'deflate') this.codings.push(new ContentDecoder('deflate', { maxOutput: options.maxBytes, maxRatio: options.maxRatio }));
      else this.refused ??= `content-encoding ${c}`;
    }
  }

  /** A possible match touches the end of what was scanned: the bytes that carry it should wait for the next push. */
  get pending(): boolean {
    return !this.idle && this.text.pending;
  }

  /** Nothing more will be scanned (budget spent, refused, or ended). */
  get idle(): boolean {
    return this.finished || this.truncated || this.refused !== null;
  }

  push(raw: Buffer, hits: DlpHit[]): void {
    this.run(raw, false, hits);
  }

  end(hits: DlpHit[]): void {
    if (this.finished) return;
    this.run(Buffer.alloc(0), true, hits);
    this.finished = true;
  }

  /** The sender paused (the hold timer): what the next byte could still have changed is decided now (TextScanner.settle). */
  settle(hits: DlpHit[]): void {
    if (!this.idle) {
      this.text.settle(hits);
      // A trailer line cut by the pause: what came of it is decided as if it ended there (its
      // end, when it comes, is scanned with the whole line).
      const partial = this.chunked?.partialTrailerLine() ?? '';
      if (partial !== '' && this.options.trailerField != null) scanTrailerLine(this.options.trailerField, partial, hits);
    }
    this.holdRaw = this.rawPushed;
  }

  private run(raw: Buffer, final: boolean, hits: DlpHit[]): void {
    const rawBase = this.rawPushed;
    this.rawPushed += raw.length;
    this.runScan(raw, rawBase, final, hits);
    // Pieces the hold can no longer reach (it stays within the scanner's kept tail) are forgotten.
    const pieces = this.pieces;
    let drop = 0;
    while (drop < pieces.length && pieces[drop]! + pieces[drop + 2]! <= this.text.keptFrom) drop += 4;
    if (drop > 0) pieces.splice(0, drop);
    this.holdRaw = this.idle || final ? this.rawPushed : this.rawOf(this.text.holdFrom);
    // An unfinished trailer line waits for its end, as a value at the end of a read does.
    const lineStart = this.chunked?.lineStart ?? -1;
    if (lineStart >= 0 && !this.idle && !final && this.options.trailerField != null) this.holdRaw = Math.min(this.holdRaw, lineStart);
  }

  /** The raw offset of decoded offset `at` (see `pieces`); all pushed bytes when it is past what was decoded. */
  private rawOf(at: number): number {
    if (at >= this.scanned) return this.rawPushed;
    const pieces = this.pieces;
    for (let i = pieces.length - 4; i >= 0; i -= 4) {
      const dec = pieces[i]!;
      if (at < dec) continue;
      return pieces[i + 3] === 1 ? pieces[i + 1]! : pieces[i + 1]! + (at - dec);
    }
    return pieces.length > 0 ? pieces[1]! : this.rawPushed;
  }

  private runScan(raw: Buffer, rawBase: number, final: boolean, hits: DlpHit[]): void {
    if (this.refused !== null && !this.refusalReported) return this.refuse(this.refused, hits);
    if (this.idle) return;
    let parts: Buffer[] = [raw];
    if (this.chunked !== null) {
      parts = this.chunked.push(raw);
      if (this.chunked.error !== null) return this.refuse(`chunked framing: ${this.chunked.error}`, hits);
      const scanField = this.options.trailerField;
      if (scanField != null) for (const line of this.chunked.trailerLines) scanTrailerLine(scanField, line, hits);
    }
    if (this.grpc !== null) {
      const messages: Buffer[] = [];
      for (const p of parts) for (const m of this.grpc.push(p)) messages.push(m);
      if (this.grpc.error !== null) return this.refuse(this.grpc.error, hits);
      if (this.grpc.bomb) return this.refuse('decompression bomb', hits);
      if (this.grpc.capped) this.truncated = true;
      parts = messages;
    }
    for (const decoder of this.codings) {
      const next: Buffer[] = [];
      for (const p of parts) next.push(...decoder.push(p, false));
      if (final) next.push(...decoder.push(Buffer.alloc(0), true));
      if (decoder.error !== null) return this.refuse(`content decoding: ${decoder.error}`, hits);
      if (decoder.bomb) return this.refuse('decompression bomb', hits);
      if (decoder.capped) this.truncated = true;
      parts = next;
    }
    const count = parts.length;
    const coded = this.codings.length > 0;
    const rawEnd = raw.byteOffset + raw.length;
    for (let i = 0; i < count; i++) {
      let p = parts[i]!;
      const room = this.options.maxBytes - this.scanned;
      if (p.length >= room) {
        p = p.subarray(0, room);
        this.truncated = true;
      }
      // A view of this read (plain, chunked, an uncompressed gRPC message) maps byte for byte;
      // inflated bytes map to the start of the read.
      const view = !coded && p.buffer === raw.buffer && p.byteOffset >= raw.byteOffset && p.byteOffset + p.length <= rawEnd;
      if (p.length > 0) this.pieces.push(this.scanned, view ? rawBase + (p.byteOffset - raw.byteOffset) : rawBase, p.length, view ? 0 : 1);
      this.scanned += p.length;
      const last = i === count - 1;
      this.text.push(p.toString('latin1'), (final && last) || this.truncated, hits);
      if (this.truncated) return;
    }
    if (count === 0 && final) this.text.push('', true, hits);
  }

  private refusalReported = false;

  private refuse(why: string, hits: DlpHit[]): void {
    this.refused = why;
    this.refusalReported = true;
    hits.push({ sensor: 'undecodable', where: this.where, offset: this.scanned, sample: why });
  }
}

/** Scans one whole value (a header value, a query string). */
export function scanValue(sensors: readonly Sensor[], where: DlpWhere, text: string, hits: DlpHit[], field?: string): void {
  const scanner = new TextScanner(sensors, where, field);
  const before = hits.length;
  scanner.push(text, true, hits);
  if (field !== undefined) for (let i = before; i < hits.length; i++) hits[i]!.field = field;
}

/** Content-Encoding values of a header list. */
export function contentEncodings(headers: HeaderList): string[] {
  const out: string[] = [];
  for (const [name, value] of headers) if (name === 'content-encoding') out.push(value);
  return out;
}
