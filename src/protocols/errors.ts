// Errors a parser reports (never throws) when a stream does not follow its protocol.
// One class per condition; `code` is stable and safe to use in metrics and flow records.
import type { Side } from './types.js';

export interface ProtocolErrorContext {
  protocol: string;
  side: Side;
  /** Absolute offset in that side's stream where the problem was found. */
  offset: number;
  /** What was wrong, in terms of the input (for logs and flow records). */
  detail: string;
}

export abstract class ProtocolError extends Error {
  abstract readonly code: string;
  readonly protocol: string;
  readonly side: Side;
  readonly offset: number;
  readonly detail: string;
  constructor(ctx: ProtocolErrorContext) {
    super(`${ctx.protocol} ${ctx.side} stream at byte ${ctx.offset}: ${ctx.detail}`);
    this.protocol = ctx.protocol;
    this.side = ctx.side;
    this.offset = ctx.offset;
    this.detail = ctx.detail;
  }
}

/** The bytes do not follow the protocol's syntax (bad request line, bad frame header, ...). */
export class MalformedStreamError extends ProtocolError {
  readonly code = 'ERR_MALFORMED' as const;
  override readonly name = 'MalformedStreamError';
}

/** A message head or header block exceeds the parser's size cap (protects the proxy's memory). */
export class HeadTooLargeError extends ProtocolError {
  readonly code = 'ERR_HEAD_TOO_LARGE' as const;
  override readonly name = 'HeadTooLargeError';
}

/** A length field announces a frame/message larger than the protocol or the parser allows. */
export class FrameTooLargeError extends ProtocolError {
  readonly code = 'ERR_FRAME_TOO_LARGE' as const;
  override readonly name = 'FrameTooLargeError';
}

/** An HPACK header block cannot be decoded (RFC 7541 §2.3.3, §5.2, §6); the connection is lost. */
export class HeaderCompressionError extends ProtocolError {
  readonly code = 'ERR_COMPRESSION' as const;
  override readonly name = 'HeaderCompressionError';
}

/** Messages arrive in an order the protocol forbids (e.g. frame interleaved in a header block). */
export class ProtocolViolationError extends ProtocolError {
  readonly code = 'ERR_PROTOCOL_VIOLATION' as const;
  override readonly name = 'ProtocolViolationError';
}

/** The stream ended in the middle of a message. */
export class TruncatedStreamError extends ProtocolError {
  readonly code = 'ERR_TRUNCATED' as const;
  override readonly name = 'TruncatedStreamError';
}

/** An unexpected exception inside a parser; reported instead of thrown so the proxy stays up. */
export class ParserInternalError extends ProtocolError {
  readonly code = 'ERR_INTERNAL' as const;
  override readonly name = 'ParserInternalError';
}

export type ProtocolErrorCode =
  | MalformedStreamError['code']
  | HeadTooLargeError['code']
  | FrameTooLargeError['code']
  | HeaderCompressionError['code']
  | ProtocolViolationError['code']
  | TruncatedStreamError['code']
  | ParserInternalError['code'];
