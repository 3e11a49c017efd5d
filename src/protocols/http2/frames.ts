// HTTP/2 frame builders (RFC 9113 §4.1 frame layout, §6 frame definitions) for frames the
// proxy injects: HEADERS (+CONTINUATION), DATA, RST_STREAM, WINDOW_UPDATE, GOAWAY, and ready
// denial answers (403, gRPC PERMISSION_DENIED) whose header blocks do not touch HPACK state.
import type { HeaderList } from '../types.js';
import { encodeLiteralHeaderBlock } from './hpack-encoder.js';

export const FRAME_HEADER_SIZE = 9;
export const DEFAULT_MAX_FRAME_SIZE = 16384;

export const FrameType = {
  DATA: 0x0, HEADERS: 0x1, PRIORITY: 0x2, RST_STREAM: 0x3, SETTINGS: 0x4, PUSH_PROMISE: 0x5,
  PING: 0x6, GOAWAY: 0x7, WINDOW_UPDATE: 0x8, CONTINUATION: 0x9,
} as const;

export const FrameFlag = {
  END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20,
} as const;

/** RFC 9113 §7 error codes. */
export const Http2ErrorCode = {
  NO_ERROR: 0x0, PROTOCOL_ERROR: 0x1, INTERNAL_ERROR: 0x2, FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4, STREAM_CLOSED: 0x5, FRAME_SIZE_ERROR: 0x6, REFUSED_STREAM: 0x7,
  CANCEL: 0x8, COMPRESSION_ERROR: 0x9, CONNECT_ERROR: 0xa, ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc, HTTP_1_1_REQUIRED: 0xd,
} as const;

function frameHeader(out: Buffer, at: number, length: number, type: number, flags: number, streamId: number): void {
  out.writeUIntBE(length, at, 3);
  out[at + 3] = type;
  out[at + 4] = flags;
  out.writeUInt32BE(streamId & 0x7fffffff, at + 5);
}

export function buildFrame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_SIZE + payload.length);
  frameHeader(out, 0, payload.length, type, flags, streamId);
  payload.copy(out, FRAME_HEADER_SIZE);
  return out;
}

/**
 * HEADERS for `block`, split into CONTINUATION frames when it exceeds `maxFrameSize`
 * (the peer's SETTINGS_MAX_FRAME_SIZE). END_HEADERS goes on the last frame.
 */
export function buildHeadersFrames(
  streamId: number,
  block: Buffer,
  options: { endStream?: boolean; maxFrameSize?: number } = {},
): Buffer {
  const max = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
  const parts: Buffer[] = [];
  let pos = 0;
  do {
    const piece = block.subarray(pos, pos + max);
    const first = pos === 0;
    pos += piece.length;
    const last = pos >= block.length;
    let flags = last ? FrameFlag.END_HEADERS : 0;
    if (first && options.endStream) flags |= FrameFlag.END_STREAM;
    parts.push(buildFrame(first ? FrameType.HEADERS : FrameType.CONTINUATION, flags, streamId, piece));
  } while (pos < block.length);
  return Buffer.concat(parts);
}

export function buildDataFrame(streamId: number, data: Buffer, endStream = false): Buffer {
  return buildFrame(FrameType.DATA, endStream ? FrameFlag.END_STREAM : 0, streamId, data);
}

export function buildRstStreamFrame(streamId: number, errorCode: number): Buffer {
  const payload = Buffer.allocUnsafe(4);
  payload.writeUInt32BE(errorCode >>> 0, 0);
  return buildFrame(FrameType.RST_STREAM, 0, streamId, payload);
}

export function buildWindowUpdateFrame(streamId: number, increment: number): Buffer {
  const payload = Buffer.allocUnsafe(4);
  payload.writeUInt32BE(increment & 0x7fffffff, 0);
  return buildFrame(FrameType.WINDOW_UPDATE, 0, streamId, payload);
}

export function buildGoawayFrame(lastStreamId: number, errorCode: number, debugData = ''): Buffer {
  const debug = Buffer.from(debugData, 'utf8');
  const payload = Buffer.allocUnsafe(8 + debug.length);
  payload.writeUInt32BE(lastStreamId & 0x7fffffff, 0);
  payload.writeUInt32BE(errorCode >>> 0, 4);
  debug.copy(payload, 8);
  return buildFrame(FrameType.GOAWAY, 0, 0, payload);
}

/** A complete `403` answer on `streamId` (HEADERS + DATA with END_STREAM). */
export function buildForbiddenResponse(streamId: number, body = 'denied by sidewall policy\n', extra: HeaderList = []): Buffer {
  const payload = Buffer.from(body, 'utf8');
  const block = encodeLiteralHeaderBlock([
    [':status', '403'],
    ['content-type', 'text/plain; charset=utf-8'],
    ['content-length', String(payload.length)],
    ...extra,
  ]);
  if (payload.length === 0) return buildHeadersFrames(streamId, block, { endStream: true });
  return Buffer.concat([buildHeadersFrames(streamId, block), buildDataFrame(streamId, payload, true)]);
}

/** gRPC-message is percent-encoded (gRPC over HTTP/2 spec, "Responses"). */
function percentEncodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * A gRPC Trailers-Only response: one HEADERS frame with END_STREAM carrying `:status 200`,
 * `content-type: application/grpc`, `grpc-status` (default 7, PERMISSION_DENIED) and message.
 */
export function buildGrpcTrailersOnly(streamId: number, grpcStatus = 7, message = 'denied by sidewall policy'): Buffer {
  const block = encodeLiteralHeaderBlock([
    [':status', '200'],
    ['content-type', 'application/grpc'],
    ['grpc-status', String(grpcStatus)],
    ['grpc-message', percentEncodeGrpcMessage(message)],
  ]);
  return buildHeadersFrames(streamId, block, { endStream: true });
}
