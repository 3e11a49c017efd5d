// HTTP/1.x message framing and semantics (RFC 9112; RFC 9110 §7.8 Upgrade, §9.3.6 CONNECT,
// §10.1.1 Expect, §15.2 interim responses). Tokenising is done by http-parser-js; this module
// adds absolute offsets, request/response pairing (keep-alive, pipelining, 1xx, HEAD, CONNECT,
// 101), the h2c hand-over to HTTP/2 (RFC 7540 §3.2) and the checks a firewall needs against
// request smuggling (Content-Length with Transfer-Encoding, bad chunk sizes, bad characters).
import { HTTPParser, type HeaderInfo } from 'http-parser-js';
import {
  HeadTooLargeError,
  MalformedStreamError,
  ProtocolError,
  ProtocolViolationError,
} from '../errors.js';
import { Http2Parser } from '../http2/http2-parser.js';
import { StreamParserBase } from '../stream-parser-base.js';
import type { HeaderList, Http1BodyFraming, Side } from '../types.js';

/** Largest request/response head (start line + headers) accepted. */
export const HTTP1_MAX_HEAD_BYTES = 64 * 1024;
/** Client bytes held after an Upgrade/CONNECT request while the server has not answered. */
export const HTTP1_MAX_HELD_AFTER_UPGRADE = 64 * 1024;

/** The parts of http-parser-js's parser state we read (plain JS fields, stable since 0.4). */
interface ParserInternals {
  offset: number;
  state: string;
  line: string;
  body_bytes: number | null;
  consumeLine(): string | undefined;
  BODY_CHUNKHEAD(): void;
  parseHeader(line: string, headers: string[]): void;
}

type LibParser = InstanceType<typeof HTTPParser>;

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const BAD_TARGET_CHAR = /[\x00-\x20\x7f]/;
const BAD_VALUE_CHAR = /[\x00-\x08\x0a-\x1f\x7f]/;
const CHUNK_SIZE_LINE = /^[0-9A-Fa-f]{1,12}(?:[ \t]*;.*)?$/;
const HEAD_STATES = new Set(['REQUEST_LINE', 'RESPONSE_LINE', 'HEADER']);
const LINE_STATES = new Set(['BODY_CHUNKHEAD', 'BODY_CHUNKEMPTYLINE', 'BODY_CHUNKTRAILERS']);

/** Thrown by a parser callback and caught around `execute` (http-parser-js rethrows it). */
class CallbackAbort extends Error {
  constructor(readonly error: ProtocolError) {
    super(error.message);
  }
}

/**
 * RFC 9112 §7.1: chunk-size is hex digits, optionally followed by chunk extensions.
 * Replaces the library's lenient parseInt so "zz" or "-1" cannot desynchronise us from the
 * server (a smuggling vector). Installed on our parser instances only.
 */
function strictChunkHead(this: ParserInternals): void {
  const line = this.consumeLine();
  if (line === undefined) return;
  if (!CHUNK_SIZE_LINE.test(line)) {
    const err = new Error(`invalid chunk size line ${JSON.stringify(line.slice(0, 40))}`);
    throw Object.assign(err, { code: 'HPE_INVALID_CHUNK_SIZE' });
  }
  const size = parseInt(line, 16);
  this.body_bytes = size;
  this.state = size === 0 ? 'BODY_CHUNKTRAILERS' : 'BODY_CHUNK';
}

const HEADER_LINE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+:/;
const libParseHeader = (HTTPParser.prototype as unknown as ParserInternals).parseHeader;

/**
 * RFC 9112 §5: a field line is `token ":" OWS value OWS`; obsolete line folding (§5.2) and
 * lines without a colon are rejected. The library silently drops such lines, which would let
 * "Transfer-Encoding : chunked" reach a lenient server unseen.
 */
function strictParseHeader(this: ParserInternals, line: string, headers: string[]): void {
  if (!HEADER_LINE.test(line)) {
    const err = new Error(`invalid header line ${JSON.stringify(line.slice(0, 60))}`);
    throw Object.assign(err, { code: 'HPE_INVALID_HEADER_TOKEN' });
  }
  libParseHeader.call(this, line, headers);
}

interface PendingRequest {
  readonly id: number;
  readonly method: string;
  readonly upgrade: string | null;
  readonly connect: boolean;
  readonly authority: string;
  readonly http2Settings: string | null;
  /** Absolute end of the whole request; -1 until it completed. */
  end: number;
}

interface HeldClientBytes {
  readonly requestId: number;
  readonly parts: Buffer[];
  bytes: number;
}

function headerList(flat: readonly string[]): HeaderList {
  const out: Array<readonly [string, string]> = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i]!.toLowerCase(), flat[i + 1]!]);
  return out;
}

function firstValue(headers: HeaderList, name: string): string | null {
  for (const [n, v] of headers) if (n === name) return v;
  return null;
}

function hostOfTarget(target: string): string | null {
  const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([^/?#@]*@)?([^/?#]*)/.exec(target);
  return m ? m[2]! : null;
}

export class Http1Parser extends StreamParserBase {
  readonly protocol = 'http' as const;
  private readonly requests: LibParser;
  private readonly responses: LibParser;
  private readonly reqState: ParserInternals;
  private readonly resState: ParserInternals;
  /** Absolute offset of the chunk being executed, per parser. */
  private reqBase = 0;
  private resBase = 0;
  private reqMessageStart = 0;
  private resMessageStart = 0;
  private reqBodyBytes = 0;
  private resBodyBytes = 0;
  private nextRequestId = 0;
  private currentRequest: PendingRequest | null = null;
  /** Requests waiting for their final response, oldest first. */
  private readonly awaiting: PendingRequest[] = [];
  private currentResponse: { requestId: number | null; interim: boolean; answered: PendingRequest | null } | null = null;
  /** Set while the client waits for the answer to an Upgrade/CONNECT request. */
  private held: HeldClientBytes | null = null;
  private resumeClient = false;
  private switched: { requestId: number | null; responseStart: number; kind: 'upgrade' | 'connect'; protocol: string; clientOffset: number; serverOffset: number; http2Settings: string | null } | null = null;
  private h2: Http2Parser | null = null;
  private serverFinishing = false;

  constructor() {
    super();
    this.requests = new HTTPParser(HTTPParser.REQUEST);
    this.responses = new HTTPParser(HTTPParser.RESPONSE);
    this.reqState = this.requests as unknown as ParserInternals;
    this.resState = this.responses as unknown as ParserInternals;
    this.requests.maxHeaderSize = Number.MAX_SAFE_INTEGER; // our own cap applies (see checkHeadSize)
    this.responses.maxHeaderSize = Number.MAX_SAFE_INTEGER;
    this.reqState.BODY_CHUNKHEAD = strictChunkHead;
    this.resState.BODY_CHUNKHEAD = strictChunkHead;
    this.reqState.parseHeader = strictParseHeader;
    this.resState.parseHeader = strictParseHeader;
    // Index-keyed handlers (not the onX setters, which flip the library into a global compat mode).
    this.requests[HTTPParser.kOnHeadersComplete] = (info: HeaderInfo) => this.onRequestHead(info);
    this.requests[HTTPParser.kOnBody] = (_chunk: Buffer, _offset: number, length: number) => {
      this.reqBodyBytes += length;
    };
    this.requests[HTTPParser.kOnMessageComplete] = () => this.onRequestComplete();
    this.responses[HTTPParser.kOnHeadersComplete] = (info: HeaderInfo) => this.onResponseHead(info);
    this.responses[HTTPParser.kOnBody] = (_chunk: Buffer, _offset: number, length: number) => {
      this.resBodyBytes += length;
    };
    this.responses[HTTPParser.kOnMessageComplete] = () => this.onResponseComplete();
  }

  protected parse(side: Side, chunk: Buffer, base: number): void {
    if (this.h2 !== null) {
      this.forwardToHttp2(side, chunk);
      return;
    }
    if (side === 'client') this.parseClient(chunk, base);
    else this.parseServer(chunk, base);
  }

  private parseClient(chunk: Buffer, base: number): void {
    if (this.held !== null) {
      this.hold(chunk, base);
      return;
    }
    this.reqBase = base;
    const consumed = this.execute(this.requests, this.reqState, 'client', chunk, base);
    if (this.held !== null && consumed < chunk.length) this.hold(chunk.subarray(consumed), base + consumed);
    this.checkHeadSize(this.reqState, 'client', base + chunk.length, this.reqMessageStart);
  }

  private parseServer(chunk: Buffer, base: number): void {
    this.resBase = base;
    const consumed = this.execute(this.responses, this.resState, 'server', chunk, base);
    if (this.switched !== null) {
      this.completeSwitch(chunk.subarray(consumed));
      return;
    }
    this.checkHeadSize(this.resState, 'server', base + chunk.length, this.resMessageStart);
    if (this.resumeClient) {
      this.resumeClient = false;
      const held = this.held;
      this.held = null;
      if (held !== null) {
        let at = this.offset('client') - held.bytes;
        for (const part of held.parts) {
          this.parseClient(part, at);
          at += part.length;
        }
      }
    }
  }

  private execute(parser: LibParser, state: ParserInternals, side: Side, chunk: Buffer, base: number): number {
    let ret: number | Error;
    try {
      ret = parser.execute(chunk);
    } catch (err) {
      if (err instanceof CallbackAbort) throw err.error;
      throw err;
    }
    if (ret instanceof Error) {
      const code = (ret as Error & { code?: string }).code;
      this.fail(MalformedStreamError, side, base + state.offset, code ? `${code}: ${ret.message}` : ret.message);
    }
    return ret;
  }

  private checkHeadSize(state: ParserInternals, side: Side, at: number, messageStart: number): void {
    if (HEAD_STATES.has(state.state) && at - messageStart > HTTP1_MAX_HEAD_BYTES) {
      this.fail(HeadTooLargeError, side, messageStart, `message head exceeds ${HTTP1_MAX_HEAD_BYTES} bytes`);
    }
    if (LINE_STATES.has(state.state) && state.line.length > HTTP1_MAX_HEAD_BYTES) {
      this.fail(HeadTooLargeError, side, at - state.line.length, `chunk line or trailers exceed ${HTTP1_MAX_HEAD_BYTES} bytes`);
    }
  }

  private hold(bytes: Buffer, at: number): void {
    const held = this.held!;
    held.bytes += bytes.length;
    if (held.bytes > HTTP1_MAX_HELD_AFTER_UPGRADE) {
      this.fail(ProtocolViolationError, 'client', at, `client sent over ${HTTP1_MAX_HELD_AFTER_UPGRADE} bytes after an Upgrade/CONNECT request before the server answered`);
    }
    held.parts.push(Buffer.from(bytes));
  }

  private abort(kind: typeof MalformedStreamError, side: Side, offset: number, detail: string): never {
    throw new CallbackAbort(new kind({ protocol: this.protocol, side, offset, detail }));
  }

  /** RFC 9110 §5.1, §5.5: field names are tokens, values have no CTLs but HTAB. */
  private validateHeaders(headers: HeaderList, side: Side, messageStart: number): void {
    for (const [name, value] of headers) {
      if (!TOKEN.test(name)) this.abort(MalformedStreamError, side, messageStart, `invalid header name ${JSON.stringify(name.slice(0, 60))}`);
      if (BAD_VALUE_CHAR.test(value)) this.abort(MalformedStreamError, side, messageStart, `control character in header ${name}`);
    }
  }

  /** RFC 9112 §6: body framing, refusing the ambiguous combinations used for smuggling. */
  private framing(headers: HeaderList, side: Side, messageStart: number, isRequest: boolean): Http1BodyFraming {
    let length: string | null = null;
    let transferEncoding: string | null = null;
    for (const [name, value] of headers) {
      if (name === 'content-length') {
        if (!/^\d{1,15}$/.test(value.trim())) this.abort(MalformedStreamError, side, messageStart, `invalid Content-Length ${JSON.stringify(value.slice(0, 40))}`);
        if (length !== null && length !== value.trim()) this.abort(MalformedStreamError, side, messageStart, 'conflicting Content-Length headers');
        length = value.trim();
      } else if (name === 'transfer-encoding') {
        transferEncoding = transferEncoding === null ? value : `${transferEncoding}, ${value}`;
      }
    }
    if (transferEncoding !== null) {
      if (length !== null) this.abort(MalformedStreamError, side, messageStart, 'both Transfer-Encoding and Content-Length (request smuggling risk)');
      const te = transferEncoding.trim().toLowerCase();
      if (te === 'chunked') return { kind: 'chunked' };
      if (isRequest) this.abort(MalformedStreamError, side, messageStart, `unsupported Transfer-Encoding ${JSON.stringify(te)} in a request`);
      return { kind: 'until-close' };
    }
    if (length !== null) return Number(length) === 0 ? { kind: 'none' } : { kind: 'length', length: Number(length) };
    return isRequest ? { kind: 'none' } : { kind: 'until-close' };
  }

  private onRequestHead(info: HeaderInfo): number {
    const start = this.reqMessageStart;
    const headEnd = this.reqBase + this.reqState.offset;
    if (headEnd - start > HTTP1_MAX_HEAD_BYTES) {
      throw new CallbackAbort(new HeadTooLargeError({ protocol: 'http', side: 'client', offset: start, detail: `request head exceeds ${HTTP1_MAX_HEAD_BYTES} bytes` }));
    }
    const method = HTTPParser.methods[info.method] ?? String(info.method);
    const target = info.url;
    if (BAD_TARGET_CHAR.test(target)) this.abort(MalformedStreamError, 'client', start, 'control character or space in the request-target');
    const headers = headerList(info.headers);
    this.validateHeaders(headers, 'client', start);
    let body = this.framing(headers, 'client', start, true);
    const connect = method === 'CONNECT';
    const upgradeHeader = firstValue(headers, 'upgrade');
    const upgrade = info.upgrade && !connect && upgradeHeader !== null ? upgradeHeader.trim().toLowerCase() : null;
    if (info.upgrade && body.kind === 'chunked') body = { kind: 'none' }; // the library ignores chunked on upgrades
    const request: PendingRequest = {
      id: this.nextRequestId++,
      method,
      upgrade,
      connect,
      authority: target,
      http2Settings: firstValue(headers, 'http2-settings'),
      end: -1,
    };
    this.currentRequest = request;
    this.awaiting.push(request);
    this.reqBodyBytes = 0;
    const expect = firstValue(headers, 'expect');
    this.emit({
      type: 'http.request',
      side: 'client',
      start,
      end: headEnd,
      id: request.id,
      method,
      path: target,
      host: firstValue(headers, 'host') ?? (connect ? target : hostOfTarget(target)),
      version: `${info.versionMajor}.${info.versionMinor}`,
      headers,
      upgrade,
      expectContinue: expect !== null && expect.trim().toLowerCase() === '100-continue',
      body,
    });
    // The library stops after a body-less Upgrade/CONNECT request: hold what follows until the
    // server says whether the protocol switches.
    if (info.upgrade && body.kind === 'none') {
      this.held = { requestId: request.id, parts: [], bytes: 0 };
    }
    return 0;
  }

  private onRequestComplete(): void {
    const end = this.reqBase + this.reqState.offset;
    const request = this.currentRequest;
    this.currentRequest = null;
    if (request === null) return;
    request.end = end;
    this.emit({ type: 'http.request-end', side: 'client', start: this.reqMessageStart, end, id: request.id, bodyBytes: this.reqBodyBytes });
    this.reqMessageStart = end;
  }

  /** Returns the library's skipBody: 1 = no body (HEAD), 2 = no body and stop (switch). */
  private onResponseHead(info: HeaderInfo): number {
    const start = this.resMessageStart;
    const headEnd = this.resBase + this.resState.offset;
    if (headEnd - start > HTTP1_MAX_HEAD_BYTES) {
      throw new CallbackAbort(new HeadTooLargeError({ protocol: 'http', side: 'server', offset: start, detail: `response head exceeds ${HTTP1_MAX_HEAD_BYTES} bytes` }));
    }
    const headers = headerList(info.headers);
    this.validateHeaders(headers, 'server', start);
    const status = info.statusCode;
    const request = this.awaiting[0] ?? null;
    const interim = status >= 100 && status < 200 && status !== 101;
    let body: Http1BodyFraming = this.framing(headers, 'server', start, false);
    let skip = 0;
    // A 101 switches whether or not we saw the request ask for it: the server will switch.
    const switching = status === 101 || (request !== null && request.connect && status >= 200 && status < 300);
    if (status < 200 || status === 204 || status === 304 || switching) {
      // RFC 9112 §6.3: no body whatever Content-Length says (a 304 may carry the length of the
      // representation); telling the library so keeps it from waiting for body bytes.
      body = { kind: 'none' };
      skip = switching ? 2 : 1;
    } else if (request !== null && request.method === 'HEAD') {
      body = { kind: 'none' };
      skip = 1;
    }
    this.currentResponse = { requestId: request?.id ?? null, interim, answered: interim ? null : request };
    this.resBodyBytes = 0;
    this.emit({
      type: 'http.response',
      side: 'server',
      start,
      end: headEnd,
      requestId: request?.id ?? null,
      status,
      reason: info.statusMessage,
      version: `${info.versionMajor}.${info.versionMinor}`,
      headers,
      interim,
      body,
    });
    if (switching) {
      const connect = request !== null && request.connect && status !== 101;
      this.switched = {
        requestId: request?.id ?? null,
        responseStart: start,
        kind: connect ? 'connect' : 'upgrade',
        protocol: connect
          ? request.authority
          : (request?.upgrade ?? firstValue(headers, 'upgrade')?.trim().toLowerCase() ?? 'unknown'),
        clientOffset: request === null ? this.reqMessageStart : request.end >= 0 ? request.end : this.reqMessageStart,
        serverOffset: headEnd,
        http2Settings: request?.http2Settings ?? null,
      };
    }
    return skip;
  }

  private onResponseComplete(): void {
    const end = this.serverFinishing ? this.offset('server') : this.resBase + this.resState.offset;
    const response = this.currentResponse;
    this.currentResponse = null;
    if (response === null) return;
    this.emit({ type: 'http.response-end', side: 'server', start: this.resMessageStart, end, requestId: response.requestId, bodyBytes: this.resBodyBytes });
    this.resMessageStart = end;
    if (response.answered !== null) {
      this.awaiting.shift();
      if (this.held !== null && this.held.requestId === response.answered.id && this.switched === null) {
        this.resumeClient = true; // refused upgrade: the held bytes are HTTP/1 again
      }
    }
  }

  private completeSwitch(serverRest: Buffer): void {
    const sw = this.switched!;
    this.emit({
      type: 'http.switch',
      side: 'server',
      start: sw.responseStart,
      end: sw.serverOffset,
      requestId: sw.requestId,
      kind: sw.kind,
      protocol: sw.protocol,
      clientOffset: sw.clientOffset,
    });
    const held = this.held;
    this.held = null;
    if (sw.kind === 'upgrade' && sw.protocol === 'h2c') {
      this.h2 = new Http2Parser({
        origin: { client: sw.clientOffset, server: sw.serverOffset },
        h2cUpgrade: true,
        http2Settings: sw.http2Settings,
      });
      if (held !== null) for (const part of held.parts) this.forwardToHttp2('client', part);
      if (serverRest.length > 0) this.forwardToHttp2('server', serverRest);
      return;
    }
    const reason = sw.kind === 'connect' ? 'http-connect' : 'http-upgrade';
    this.markOpaque('client', sw.clientOffset, reason);
    this.markOpaque('server', sw.serverOffset, reason);
  }

  private forwardToHttp2(side: Side, bytes: Buffer): void {
    const result = this.h2!.feed(side, bytes);
    for (const event of result.events) this.emit(event);
    if (result.error !== null) throw result.error;
  }

  protected finish(side: Side, offset: number): void {
    if (this.h2 !== null) {
      const result = this.h2.end(side);
      for (const event of result.events) this.emit(event);
      if (result.error !== null) throw result.error;
      return;
    }
    if (side === 'client') {
      if (this.held === null && this.reqState.state !== 'REQUEST_LINE') this.truncated('client', offset, 'an HTTP request');
      if (this.held === null && this.reqState.line.length > 0) this.truncated('client', offset, 'an HTTP request line');
      return;
    }
    this.serverFinishing = true;
    this.resBase = offset;
    const ret = this.responses.finish();
    this.serverFinishing = false;
    if (ret instanceof Error || this.resState.line.length > 0) this.truncated('server', offset, 'an HTTP response');
  }
}
