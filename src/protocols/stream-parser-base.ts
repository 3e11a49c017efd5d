// Shared plumbing of every stream parser: absolute offsets per side, the never-throw guarantee,
// inert-after-error, and opaque sides. Protocol folders implement `parse` and `finish`.
import {
  ParserInternalError,
  ProtocolError,
  TruncatedStreamError,
  type ProtocolErrorContext,
} from './errors.js';
import type { OpaqueEvent, ParseResult, ProtocolEvent, Side, StreamParser } from './types.js';

const NO_EVENTS: readonly ProtocolEvent[] = Object.freeze([]);

type ErrorClass = new (ctx: ProtocolErrorContext) => ProtocolError;

export abstract class StreamParserBase implements StreamParser {
  abstract readonly protocol: string;
  private clientOffset: number;
  private serverOffset: number;
  private clientOpaque = false;
  private serverOpaque = false;
  private failure: ProtocolError | null = null;
  private pending: ProtocolEvent[] | null = null;

  /**
   * `origin`: absolute offsets at which this parser's streams begin (non-zero when a parser
   * takes over mid-connection, e.g. HTTP/2 after an HTTP/1.1 `Upgrade: h2c`).
   */
  constructor(origin?: { readonly client: number; readonly server: number }) {
    this.clientOffset = origin?.client ?? 0;
    this.serverOffset = origin?.server ?? 0;
  }

  /** Parse `chunk`, whose first byte is at absolute offset `base` of `side`'s stream. */
  protected abstract parse(side: Side, chunk: Buffer, base: number): void;

  /** The side ended at absolute offset `offset`: throw (via `fail`) if a message is cut short. */
  protected abstract finish(side: Side, offset: number): void;

  get error(): ProtocolError | null {
    return this.failure;
  }

  offset(side: Side): number {
    return side === 'client' ? this.clientOffset : this.serverOffset;
  }

  feed(side: Side, chunk: Buffer): ParseResult {
    if (this.failure !== null) return { consumed: 0, events: NO_EVENTS, error: this.failure };
    const base = side === 'client' ? this.clientOffset : this.serverOffset;
    if (side === 'client') this.clientOffset += chunk.length;
    else this.serverOffset += chunk.length;
    if (chunk.length === 0 || (side === 'client' ? this.clientOpaque : this.serverOpaque)) {
      return { consumed: chunk.length, events: NO_EVENTS, error: null };
    }
    this.pending = null;
    try {
      this.parse(side, chunk, base);
    } catch (err) {
      this.failure = this.toProtocolError(err, side, base);
      const consumed = Math.max(0, Math.min(chunk.length, this.failure.offset - base));
      return { consumed, events: this.takeEvents(), error: this.failure };
    }
    return { consumed: chunk.length, events: this.takeEvents(), error: null };
  }

  end(side: Side): ParseResult {
    if (this.failure !== null) return { consumed: 0, events: NO_EVENTS, error: this.failure };
    if (side === 'client' ? this.clientOpaque : this.serverOpaque) {
      return { consumed: 0, events: NO_EVENTS, error: null };
    }
    this.pending = null;
    const offset = this.offset(side);
    try {
      this.finish(side, offset);
    } catch (err) {
      this.failure = this.toProtocolError(err, side, offset);
      return { consumed: 0, events: this.takeEvents(), error: this.failure };
    }
    return { consumed: 0, events: this.takeEvents(), error: null };
  }

  protected emit(event: ProtocolEvent): void {
    if (this.pending === null) this.pending = [event];
    else this.pending.push(event);
  }

  /** Stop interpreting `side` from absolute offset `at` (bytes already fed past it are ignored). */
  protected markOpaque(side: Side, at: number, reason: OpaqueEvent['reason']): void {
    if (side === 'client') this.clientOpaque = true;
    else this.serverOpaque = true;
    this.emit({ type: 'opaque', side, start: at, end: at, reason });
  }

  protected isOpaque(side: Side): boolean {
    return side === 'client' ? this.clientOpaque : this.serverOpaque;
  }

  /** Report a malformed stream: throws, `feed` turns it into the result's `error`. */
  protected fail(kind: ErrorClass, side: Side, offset: number, detail: string): never {
    throw new kind({ protocol: this.protocol, side, offset, detail });
  }

  protected truncated(side: Side, offset: number, what: string): never {
    return this.fail(TruncatedStreamError, side, offset, `stream ended inside ${what}`);
  }

  private takeEvents(): readonly ProtocolEvent[] {
    const events = this.pending;
    this.pending = null;
    return events ?? NO_EVENTS;
  }

  private toProtocolError(err: unknown, side: Side, offset: number): ProtocolError {
    if (err instanceof ProtocolError) return err;
    const detail = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    return new ParserInternalError({ protocol: this.protocol, side, offset, detail });
  }
}
