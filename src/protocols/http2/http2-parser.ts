// HTTP/2 connection parser (RFC 9113): connection preface (§3.4), frame layout (§4.1), frame
// size limits (§4.2), header blocks = HEADERS/PUSH_PROMISE + CONTINUATION (§4.3, §6.2, §6.6,
// §6.10), SETTINGS (§6.5), RST_STREAM (§6.4), GOAWAY (§6.8); header blocks are decoded with
// one HPACK decoder per direction (RFC 7541). gRPC calls are named from `:path`
// (gRPC over HTTP/2: "/" Service-Name "/" Method-Name).
import {
  FrameTooLargeError,
  HeadTooLargeError,
  HeaderCompressionError,
  MalformedStreamError,
  ProtocolViolationError,
} from '../errors.js';
import { FixedGather } from '../byte-gather.js';
import { StreamParserBase } from '../stream-parser-base.js';
import type { GrpcCall, HeaderList, Http2FrameTypeName, Http2HeadersEvent, Side } from '../types.js';
import { DEFAULT_MAX_FRAME_SIZE, FRAME_HEADER_SIZE, FrameFlag, FrameType } from './frames.js';
import { HpackDecodeFailure, HpackDecoder } from './hpack-decoder.js';

export const HTTP2_CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** Largest assembled header block accepted (guards against CONTINUATION floods). */
export const HTTP2_MAX_HEADER_BLOCK_BYTES = 256 * 1024;
const MAX_ALLOWED_FRAME_SIZE = 16777215;
/** Streams tracked for request/response roles; the oldest are forgotten past this. */
const MAX_TRACKED_STREAMS = 10000;
/**
 * Frames one header block may span (HEADERS + CONTINUATIONs). 256 KiB in 16 KiB frames is 16;
 * no encoder splits finer than that by much. Past it the block is refused: each frame would
 * otherwise cost objects (CONTINUATION floods, CVE-2024-27316 and kin) while adding no bytes.
 */
export const HTTP2_MAX_BLOCK_FRAMES = 128;
/**
 * Largest payload gathered whole for a frame that is decoded (SETTINGS, RST_STREAM, GOAWAY): the
 * gather buffer is allocated from the frame header's length, so a 9-byte header must not make us
 * allocate what SETTINGS_MAX_FRAME_SIZE allows (16 MiB). Header-block frames are bounded by
 * HTTP2_MAX_HEADER_BLOCK_BYTES instead.
 */
const MAX_CONTROL_PAYLOAD = 16 * 1024;
/** Memory a tracked stream costs (the StreamState object and its Map entry), for the state budget. */
const STREAM_MEMORY_BYTES = 96;

const AUTHORITY_BIT = 4;
const HOST_BIT = 64;
/** Fields a request or response carries at most once (RFC 9113 §8.3; content-type, host: RFC 9110). */
const SINGLE_VALUED = new Map<string, number>([
  [':method', 1], [':path', 2], [':authority', AUTHORITY_BIT], [':scheme', 8], [':status', 16], ['content-type', 32], ['host', HOST_BIT],
]);

const FRAME_TYPE_NAMES: readonly Http2FrameTypeName[] = [
  'DATA', 'HEADERS', 'PRIORITY', 'RST_STREAM', 'SETTINGS', 'PUSH_PROMISE', 'PING', 'GOAWAY',
  'WINDOW_UPDATE', 'CONTINUATION',
];

const enum Phase {
  Preface,
  FrameHeader,
  Payload,
  Skip,
}

interface HeaderBlockInProgress {
  readonly streamId: number;
  readonly start: number;
  readonly promisedStreamId: number | null;
  readonly endStream: boolean;
  readonly pieces: Buffer[];
  readonly fragments: Array<{ start: number; end: number }>;
  bytes: number;
  frames: number;
}

interface StreamState {
  requestSeen: boolean;
  responseSeen: boolean;
  clientClosed: boolean;
  serverClosed: boolean;
}

class DirectionState {
  phase: Phase;
  readonly gather = new FixedGather();
  /** Decodes the header blocks this side sends. */
  readonly decoder = new HpackDecoder();
  /** Largest frame this side may send (the peer's SETTINGS_MAX_FRAME_SIZE). */
  maxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  sawFrame = false;
  prefaceSeen = 0;
  prefaceStart = 0;
  frameStart = 0;
  frameLength = 0;
  frameType = 0;
  frameFlags = 0;
  streamId = 0;
  skipRemaining = 0;
  block: HeaderBlockInProgress | null = null;
  constructor(phase: Phase) {
    this.phase = phase;
  }
}

export interface Http2ParserOptions {
  /** Absolute offsets at which the HTTP/2 streams begin (after an h2c upgrade). */
  readonly origin?: { readonly client: number; readonly server: number };
  /** Started by HTTP/1.1 `Upgrade: h2c`: stream 1 is the upgraded request (RFC 7540 §3.2). */
  readonly h2cUpgrade?: boolean;
  /** The upgrade request's HTTP2-Settings header (base64url SETTINGS payload). */
  readonly http2Settings?: string | null;
}

function grpcCallOf(path: string | null): GrpcCall | null {
  if (path === null || path.charCodeAt(0) !== 0x2f) return null;
  const slash = path.indexOf('/', 1);
  if (slash <= 1 || slash === path.length - 1) return null;
  const query = path.indexOf('?', slash);
  return { service: path.slice(1, slash), method: path.slice(slash + 1, query < 0 ? undefined : query) };
}

function decodeGrpcMessage(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

export class Http2Parser extends StreamParserBase {
  readonly protocol = 'http2' as const;
  private readonly client: DirectionState;
  private readonly server = new DirectionState(Phase.FrameHeader);
  private readonly streams = new Map<number, StreamState>();

  constructor(options: Http2ParserOptions = {}) {
    super(options.origin);
    this.client = new DirectionState(Phase.Preface);
    if (options.h2cUpgrade) {
      this.streams.set(1, { requestSeen: true, responseSeen: false, clientClosed: true, serverClosed: false });
    }
    if (options.http2Settings) {
      const payload = Buffer.from(options.http2Settings, 'base64url');
      this.applySettings('client', payload.subarray(0, payload.length - (payload.length % 6)));
    }
  }

  protected parse(side: Side, chunk: Buffer, base: number): void {
    const st = side === 'client' ? this.client : this.server;
    let pos = 0;
    while (pos < chunk.length) {
      switch (st.phase) {
        case Phase.Preface: {
          // Compared as it arrives, so a non-HTTP/2 client fails on its first byte.
          const n = Math.min(HTTP2_CLIENT_PREFACE.length - st.prefaceSeen, chunk.length - pos);
          if (st.prefaceSeen === 0) st.prefaceStart = base + pos;
          if (chunk.compare(HTTP2_CLIENT_PREFACE, st.prefaceSeen, st.prefaceSeen + n, pos, pos + n) !== 0) {
            this.fail(MalformedStreamError, side, st.prefaceStart, 'not the HTTP/2 connection preface');
          }
          st.prefaceSeen += n;
          pos += n;
          if (st.prefaceSeen === HTTP2_CLIENT_PREFACE.length) {
            this.emit({ type: 'http2.preface', side, start: st.prefaceStart, end: st.prefaceStart + st.prefaceSeen });
            st.phase = Phase.FrameHeader;
          }
          break;
        }
        case Phase.FrameHeader: {
          if (!st.gather.pending) st.frameStart = base + pos;
          const header = st.gather.take(chunk, pos, FRAME_HEADER_SIZE);
          pos += st.gather.used;
          if (header === null) return;
          this.onFrameHeader(side, st, header);
          if ((st.phase as Phase) === Phase.Payload && st.frameLength === 0) this.onPayload(side, st, header.subarray(0, 0));
          break;
        }
        case Phase.Payload: {
          const payload = st.gather.take(chunk, pos, st.frameLength);
          pos += st.gather.used;
          if (payload === null) return;
          this.onPayload(side, st, payload);
          break;
        }
        case Phase.Skip: {
          const n = Math.min(st.skipRemaining, chunk.length - pos);
          pos += n;
          st.skipRemaining -= n;
          if (st.skipRemaining === 0) st.phase = Phase.FrameHeader;
          break;
        }
      }
    }
  }

  private onFrameHeader(side: Side, st: DirectionState, header: Buffer): void {
    const length = header.readUIntBE(0, 3);
    const type = header[3]!;
    const flags = header[4]!;
    const streamId = header.readUInt32BE(5) & 0x7fffffff;
    const start = st.frameStart;
    if (length > st.maxFrameSize) {
      this.fail(FrameTooLargeError, side, start, `frame of ${length} bytes exceeds SETTINGS_MAX_FRAME_SIZE ${st.maxFrameSize}`);
    }
    if (!st.sawFrame && type !== FrameType.SETTINGS) {
      this.fail(ProtocolViolationError, side, start, `first frame is ${FRAME_TYPE_NAMES[type] ?? `type ${type}`}, not SETTINGS`);
    }
    st.sawFrame = true;
    if ((type === FrameType.HEADERS || type === FrameType.CONTINUATION || type === FrameType.PUSH_PROMISE) && length > HTTP2_MAX_HEADER_BLOCK_BYTES + 256 + 5) {
      // Refused before its payload is gathered (the gather buffer is allocated from this length).
      this.fail(HeadTooLargeError, side, start, `header block frame of ${length} bytes exceeds ${HTTP2_MAX_HEADER_BLOCK_BYTES} bytes`);
    }
    if ((type === FrameType.SETTINGS || type === FrameType.GOAWAY || type === FrameType.RST_STREAM) && length > MAX_CONTROL_PAYLOAD) {
      this.fail(FrameTooLargeError, side, start, `${FRAME_TYPE_NAMES[type]} frame of ${length} bytes exceeds ${MAX_CONTROL_PAYLOAD}`);
    }
    if (st.block !== null && (type !== FrameType.CONTINUATION || streamId !== st.block.streamId)) {
      this.fail(ProtocolViolationError, side, start, `expected CONTINUATION of stream ${st.block.streamId}`);
    }
    if (type === FrameType.CONTINUATION && st.block === null) {
      this.fail(ProtocolViolationError, side, start, 'CONTINUATION without a preceding HEADERS');
    }
    const endStream = (type === FrameType.DATA || type === FrameType.HEADERS) && (flags & FrameFlag.END_STREAM) !== 0;
    st.frameLength = length;
    st.frameType = type;
    st.frameFlags = flags;
    st.streamId = streamId;
    this.emit({
      type: 'http2.frame',
      side,
      start,
      end: start + FRAME_HEADER_SIZE + length,
      frameType: type,
      frameTypeName: FRAME_TYPE_NAMES[type] ?? 'UNKNOWN',
      flags,
      streamId,
      length,
      endStream,
    });
    if (type === FrameType.DATA) {
      if (streamId === 0) this.fail(ProtocolViolationError, side, start, 'DATA on stream 0');
      if (endStream) this.closeStream(side, streamId);
    }
    const needsPayload =
      type === FrameType.HEADERS || type === FrameType.CONTINUATION || type === FrameType.PUSH_PROMISE ||
      type === FrameType.SETTINGS || type === FrameType.RST_STREAM || type === FrameType.GOAWAY;
    if (needsPayload) {
      st.phase = Phase.Payload;
    } else if (length > 0) {
      st.phase = Phase.Skip;
      st.skipRemaining = length;
    } else {
      st.phase = Phase.FrameHeader;
    }
  }

  private onPayload(side: Side, st: DirectionState, payload: Buffer): void {
    st.phase = Phase.FrameHeader;
    const start = st.frameStart;
    const end = start + FRAME_HEADER_SIZE + st.frameLength;
    const payloadStart = start + FRAME_HEADER_SIZE;
    switch (st.frameType) {
      case FrameType.HEADERS:
      case FrameType.PUSH_PROMISE: {
        if (st.streamId === 0) this.fail(ProtocolViolationError, side, start, 'header block on stream 0');
        let at = 0;
        let padding = 0;
        if (st.frameFlags & FrameFlag.PADDED) {
          if (payload.length < 1) this.fail(MalformedStreamError, side, start, 'PADDED frame without pad length');
          padding = payload[0]!;
          at = 1;
        }
        let promised: number | null = null;
        if (st.frameType === FrameType.PUSH_PROMISE) {
          if (payload.length < at + 4) this.fail(MalformedStreamError, side, start, 'PUSH_PROMISE too short');
          promised = payload.readUInt32BE(at) & 0x7fffffff;
          at += 4;
        } else if (st.frameFlags & FrameFlag.PRIORITY) {
          at += 5;
        }
        if (at + padding > payload.length) {
          this.fail(MalformedStreamError, side, start, 'padding and priority fields exceed the frame');
        }
        st.block = {
          streamId: st.streamId,
          start,
          promisedStreamId: promised,
          endStream: st.frameType === FrameType.HEADERS && (st.frameFlags & FrameFlag.END_STREAM) !== 0,
          pieces: [],
          fragments: [],
          bytes: 0,
          frames: 0,
        };
        this.addFragment(side, st, payload.subarray(at, payload.length - padding), payloadStart + at, end);
        return;
      }
      case FrameType.CONTINUATION:
        this.addFragment(side, st, payload, payloadStart, end);
        return;
      case FrameType.SETTINGS: {
        if (st.streamId !== 0) this.fail(ProtocolViolationError, side, start, 'SETTINGS on a stream');
        const ack = (st.frameFlags & FrameFlag.ACK) !== 0;
        if (ack ? payload.length !== 0 : payload.length % 6 !== 0) {
          this.fail(MalformedStreamError, side, start, `SETTINGS payload of ${payload.length} bytes`);
        }
        const settings = ack ? [] : this.applySettings(side, payload, start);
        this.emit({ type: 'http2.settings', side, start, end, ack, settings });
        return;
      }
      case FrameType.RST_STREAM: {
        if (payload.length !== 4) this.fail(MalformedStreamError, side, start, `RST_STREAM payload of ${payload.length} bytes`);
        this.streams.delete(st.streamId);
        this.emit({ type: 'http2.rst-stream', side, start, end, streamId: st.streamId, errorCode: payload.readUInt32BE(0) });
        return;
      }
      case FrameType.GOAWAY: {
        if (payload.length < 8) this.fail(MalformedStreamError, side, start, `GOAWAY payload of ${payload.length} bytes`);
        this.emit({
          type: 'http2.goaway',
          side,
          start,
          end,
          lastStreamId: payload.readUInt32BE(0) & 0x7fffffff,
          errorCode: payload.readUInt32BE(4),
          debugData: payload.toString('latin1', 8, Math.min(payload.length, 8 + 256)),
        });
        return;
      }
    }
  }

  /** Apply a SETTINGS payload sent by `side`; returns the (id, value) pairs. */
  private applySettings(side: Side, payload: Buffer, frameStart = 0): Array<readonly [number, number]> {
    const peer = side === 'client' ? this.server : this.client;
    const settings: Array<readonly [number, number]> = [];
    for (let i = 0; i + 6 <= payload.length; i += 6) {
      const id = payload.readUInt16BE(i);
      const value = payload.readUInt32BE(i + 2);
      settings.push([id, value]);
      if (id === 0x1) {
        // SETTINGS_HEADER_TABLE_SIZE: bounds the table of *this side's* decoder, which decodes
        // what the peer sends.
        peer.decoder.allowTableSize(value);
      } else if (id === 0x5) {
        if (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_ALLOWED_FRAME_SIZE) {
          this.fail(ProtocolViolationError, side, frameStart, `SETTINGS_MAX_FRAME_SIZE ${value} out of range`);
        }
        peer.maxFrameSize = Math.max(peer.maxFrameSize, value);
      }
    }
    return settings;
  }

  private addFragment(side: Side, st: DirectionState, fragment: Buffer, fragStart: number, frameEnd: number): void {
    const block = st.block!;
    block.bytes += fragment.length;
    if (block.bytes > HTTP2_MAX_HEADER_BLOCK_BYTES) {
      this.fail(HeadTooLargeError, side, block.start, `header block exceeds ${HTTP2_MAX_HEADER_BLOCK_BYTES} bytes`);
    }
    if (++block.frames > HTTP2_MAX_BLOCK_FRAMES) {
      this.fail(HeadTooLargeError, side, block.start, `header block spans more than ${HTTP2_MAX_BLOCK_FRAMES} frames`);
    }
    const last = (st.frameFlags & FrameFlag.END_HEADERS) !== 0;
    // A block that goes on past this read keeps a copy, not a view: the relay reuses its read
    // buffer for the next read (the copies are bounded by HTTP2_MAX_HEADER_BLOCK_BYTES).
    if (fragment.length > 0) block.pieces.push(last ? fragment : Buffer.from(fragment));
    block.fragments.push({ start: fragStart, end: fragStart + fragment.length });
    if (!last) return;
    st.block = null;
    this.completeHeaderBlock(side, st, block, frameEnd);
  }

  private completeHeaderBlock(side: Side, st: DirectionState, block: HeaderBlockInProgress, end: number): void {
    const bytes = block.pieces.length === 1 ? block.pieces[0]! : Buffer.concat(block.pieces, block.bytes);
    const decoded = st.decoder.decode(bytes);
    if (decoded instanceof HpackDecodeFailure) {
      const at = this.absoluteInBlock(block, decoded.at);
      if (decoded.kind === 'too-large') this.fail(HeadTooLargeError, side, at, decoded.detail);
      this.fail(HeaderCompressionError, side, at, decoded.detail);
    }
    let method: string | null = null;
    let path: string | null = null;
    let authority: string | null = null;
    let scheme: string | null = null;
    let statusText: string | null = null;
    let contentType: string | null = null;
    let grpcStatusText: string | null = null;
    let grpcMessage: string | null = null;
    const headers: Array<readonly [string, string]> = [];
    let ambiguous: string | null = null;
    let seenSingle = 0;
    let host: string | null = null;
    for (const field of decoded.fields) {
      if (field.representation === 'size-update') continue;
      const name = field.name;
      const single = SINGLE_VALUED.get(name.toLowerCase());
      if (single !== undefined) {
        if ((seenSingle & single) !== 0) ambiguous ??= name.toLowerCase();
        seenSingle |= single;
        if (single === HOST_BIT) host = field.value;
      }
      if (name.charCodeAt(0) === 0x3a) {
        if (name === ':method') method = field.value;
        else if (name === ':path') path = field.value;
        else if (name === ':authority') authority = field.value;
        else if (name === ':scheme') scheme = field.value;
        else if (name === ':status') statusText = field.value;
        continue;
      }
      const lower = name.toLowerCase();
      if (lower === 'content-type') contentType = field.value;
      else if (lower === 'grpc-status') grpcStatusText = field.value;
      else if (lower === 'grpc-message') grpcMessage = decodeGrpcMessage(field.value);
      else if (lower === 'host' && authority === null) authority = field.value;
      headers.push([lower, field.value]);
    }
    if (ambiguous === null && host !== null && (seenSingle & AUTHORITY_BIT) !== 0 && authority !== null && host.toLowerCase() !== authority.toLowerCase()) ambiguous = 'host';
    const status = statusText !== null && /^\d{3}$/.test(statusText) ? Number(statusText) : null;
    const role = this.roleOf(side, block, status);
    const isGrpc = contentType !== null && contentType.toLowerCase().startsWith('application/grpc');
    const grpcStatus = grpcStatusText !== null && /^\d{1,3}$/.test(grpcStatusText.trim()) ? Number(grpcStatusText.trim()) : null;
    if (block.endStream) this.closeStream(side, block.streamId);
    const event: Http2HeadersEvent = {
      type: 'http2.headers',
      side,
      start: block.start,
      end,
      streamId: block.streamId,
      role,
      promisedStreamId: block.promisedStreamId,
      endStream: block.endStream,
      method,
      path,
      authority,
      scheme,
      status,
      headers: headers as HeaderList,
      grpc: (role === 'request' || role === 'push-promise') && isGrpc ? grpcCallOf(path) : null,
      grpcStatus,
      grpcMessage,
      block: bytes,
      fragments: block.fragments,
      fields: decoded.fields,
      mutatesTable: decoded.mutatesTable,
      ambiguous,
    };
    this.emit(event);
  }

  private roleOf(side: Side, block: HeaderBlockInProgress, status: number | null): Http2HeadersEvent['role'] {
    if (block.promisedStreamId !== null) {
      this.streams.set(block.promisedStreamId, { requestSeen: true, responseSeen: false, clientClosed: true, serverClosed: false });
      return 'push-promise';
    }
    let stream = this.streams.get(block.streamId);
    if (stream === undefined) {
      stream = { requestSeen: false, responseSeen: false, clientClosed: false, serverClosed: false };
      if (this.streams.size >= MAX_TRACKED_STREAMS) {
        // Streams a peer never closes must not grow memory without bound (Map keeps insertion order).
        const oldest = this.streams.keys().next();
        if (!oldest.done) this.streams.delete(oldest.value);
      }
      this.streams.set(block.streamId, stream);
    }
    if (side === 'client') {
      if (stream.requestSeen) return 'trailers';
      stream.requestSeen = true;
      return 'request';
    }
    if (stream.responseSeen) return 'trailers';
    if (status !== null && status >= 100 && status < 200) return 'informational';
    stream.responseSeen = true;
    return 'response';
  }

  private closeStream(side: Side, streamId: number): void {
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    if (side === 'client') stream.clientClosed = true;
    else stream.serverClosed = true;
    if (stream.clientClosed && stream.serverClosed) this.streams.delete(streamId);
  }

  /** Map an offset inside an assembled block to the absolute stream offset. */
  private absoluteInBlock(block: HeaderBlockInProgress, at: number): number {
    let rest = at;
    for (const fragment of block.fragments) {
      const length = fragment.end - fragment.start;
      if (rest < length) return fragment.start + rest;
      rest -= length;
    }
    const last = block.fragments[block.fragments.length - 1];
    return last ? last.end : block.start;
  }

  /**
   * Memory this parser keeps for the connection beyond its fixed objects (estimate): both HPACK
   * tables, tracked streams, header blocks being assembled, a frame being gathered. Bounded by
   * HPACK_MAX_TABLE_SIZE, MAX_TRACKED_STREAMS and HTTP2_MAX_HEADER_BLOCK_BYTES; the relay puts it
   * in the state budget (memory-limits.ts).
   */
  get stateBytes(): number {
    const c = this.client;
    const s = this.server;
    return (
      c.decoder.memoryBytes + s.decoder.memoryBytes + this.streams.size * STREAM_MEMORY_BYTES +
      (c.block === null ? 0 : c.block.bytes + c.block.frames * 48) + (s.block === null ? 0 : s.block.bytes + s.block.frames * 48) +
      c.gather.pendingBytes + s.gather.pendingBytes
    );
  }

  protected finish(side: Side, offset: number): void {
    const st = side === 'client' ? this.client : this.server;
    if (st.gather.pending || st.phase === Phase.Payload || st.phase === Phase.Skip || st.block !== null) {
      this.truncated(side, offset, 'an HTTP/2 frame');
    }
    if (st.phase === Phase.Preface && st.prefaceSeen > 0) this.truncated(side, offset, 'the connection preface');
  }
}
