// HTTP/1.x message framing and semantics (RFC 9112; RFC 9110 §7.8 Upgrade, §9.3.6 CONNECT,
// §10.1.1 Expect, §15.2 interim responses). Tokenising and framing are llhttp's (llhttp.ts: the
// parser of Node's own http module, strict mode), so a message ends where Node's servers end it;
// this module adds absolute offsets, request/response pairing (keep-alive, pipelining, 1xx, HEAD,
// CONNECT, 101), the h2c hand-over to HTTP/2 (RFC 7540 §3.2) and what a firewall refuses on top
// of llhttp: a second Content-Length or Host, a body on GET/HEAD (servers that ignore it would
// run it as the next request), a switch the request did not ask for, a response nobody asked for.
import {
  HeadTooLargeError,
  MalformedStreamError,
  ProtocolViolationError,
} from '../errors.js';
import { Http2Parser } from '../http2/http2-parser.js';
import { StreamParserBase } from '../stream-parser-base.js';
import type { HeaderList, Http1BodyFraming, Side } from '../types.js';
import { Llhttp, LLHTTP_OK, LLHTTP_PAUSE, LLHTTP_PAUSED, LLHTTP_PAUSED_UPGRADE, type LlhttpHandler } from './llhttp.js';

/** Largest request/response head (start line + headers) accepted. */
export const HTTP1_MAX_HEAD_BYTES = 64 * 1024;
/** Client bytes held after an Upgrade/CONNECT request while the server has not answered. */
export const HTTP1_MAX_HELD_AFTER_UPGRADE = 64 * 1024;

/** RFC 9110 §9.3.1, §9.3.2, §9.3.8: content has no defined meaning; many servers never read it. */
const BODYLESS_METHODS = new Set(['GET', 'HEAD', 'TRACE']);

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

function firstValue(headers: HeaderList, name: string): string | null {
  for (let i = 0; i < headers.length; i++) if (headers[i]![0] === name) return headers[i]![1];
  return null;
}

function count(headers: HeaderList, name: string): number {
  let n = 0;
  for (let i = 0; i < headers.length; i++) if (headers[i]![0] === name) n++;
  return n;
}

function hostOfTarget(target: string): string | null {
  const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([^/?#@]*@)?([^/?#]*)/.exec(target);
  return m ? m[2]! : null;
}

/** Comma-separated tokens of a field value, lower-cased (RFC 9110 §5.6.1). */
function tokens(value: string | null): string[] {
  if (value === null) return [];
  return value.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== '');
}

/**
 * Field names seen on most messages, lower case, by length: a name whose bytes are one of them
 * (ASCII case-insensitively) becomes that string without a string made from the bytes and
 * another by lower-casing them.
 */
const KNOWN_NAMES: ReadonlyArray<readonly string[] | undefined> = (() => {
  const names = [
    'host', 'content-length', 'content-type', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'expect',
    'server', 'date', 'user-agent', 'accept', 'accept-encoding', 'accept-language', 'accept-ranges', 'content-encoding',
    'cache-control', 'pragma', 'cookie', 'set-cookie', 'authorization', 'etag', 'last-modified', 'vary', 'location',
    'origin', 'referer', 'te', 'trailer', 'x-forwarded-for', 'x-forwarded-proto', 'x-request-id', 'traceparent',
  ];
  const byLength: Array<string[] | undefined> = [];
  for (const name of names) (byLength[name.length] ??= []).push(name);
  return byLength;
})();

function knownName(chunk: Buffer, start: number, end: number): string | null {
  const candidates = KNOWN_NAMES[end - start];
  if (candidates === undefined) return null;
  for (let k = 0; k < candidates.length; k++) {
    const name = candidates[k]!;
    let i = 0;
    for (; i < name.length; i++) {
      const b = chunk[start + i]!;
      if ((b >= 0x41 && b <= 0x5a ? b | 0x20 : b) !== name.charCodeAt(i)) break;
    }
    if (i === name.length) return name;
  }
  return null;
}

/** `previous` when chunk[start, end) holds exactly its characters (latin1), else a new string of them. */
function sameOrSlice(previous: string, chunk: Buffer, start: number, end: number): string {
  if (previous.length === end - start) {
    let i = 0;
    while (i < previous.length && chunk[start + i] === previous.charCodeAt(i)) i++;
    if (i === previous.length) return previous;
  }
  return chunk.toString('latin1', start, end);
}

/**
 * One direction's llhttp callbacks, collected into a message head. Spans can arrive in pieces
 * (a chunk boundary inside a header): pieces are appended. On a keep-alive connection most heads
 * repeat the last one's fields: a piece with the same bytes as the field in the same place last
 * time is that string again, and a head whose fields all repeat is the same HeaderList (it is
 * read-only), so such a head makes no strings and no arrays.
 */
class MessageReader implements LlhttpHandler {
  readonly ll: Llhttp;
  chunk: Buffer = Buffer.alloc(0);
  target = '';
  /** The last message's target: the next one is often the same. */
  private lastTarget = '';
  reason = '';
  /** Name, value, name, value... of the head being read: `fieldCount` entries (the rest are the last head's). */
  private readonly fields: string[] = [];
  private fieldCount = 0;
  /** The last head's list and the fields it was made of (lower-case names, trimmed values). */
  private lastHeaders: HeaderList = [];
  private lastHeaderFields: string[] = [];
  private lastWasValue = false;
  /** In a head: between message begin and the head's end. */
  inHead = false;
  bodyBytes = 0;
  /** What the next pause of llhttp stands for. */
  pause: 'head' | 'end' | null = null;
  /** A head whose end is known at the next pause (its message's end, for bodiless responses). */
  headPending = false;
  status = 0;
  upgradeFlag = false;
  /** Set while llhttp_finish runs: callbacks may not pause then. */
  finishing = false;

  constructor(kind: 'request' | 'response', private readonly onHead: (reader: MessageReader) => number) {
    this.ll = new Llhttp(kind, this);
  }

  onMessageBegin(): number {
    if (this.target !== '') this.lastTarget = this.target;
    this.target = '';
    this.reason = '';
    this.fieldCount = 0;
    this.lastWasValue = false;
    this.inHead = true;
    this.bodyBytes = 0;
    return 0;
  }

  onUrl(start: number, end: number): number {
    this.target = this.target === '' ? sameOrSlice(this.lastTarget, this.chunk, start, end) : this.target + this.chunk.toString('latin1', start, end);
    return 0;
  }

  onStatus(start: number, end: number): number {
    this.reason += this.chunk.toString('latin1', start, end);
    return 0;
  }

  onHeaderField(start: number, end: number): number {
    const fields = this.fields;
    if (this.lastWasValue || this.fieldCount === 0) {
      // A new field: its first piece. A later piece (the chunk ended inside the name) is appended;
      // headers() lower-cases the whole name, as it would have without the known-name shortcut.
      const n = this.fieldCount;
      fields[n] = knownName(this.chunk, start, end) ?? this.chunk.toString('latin1', start, end);
      fields[n + 1] = '';
      this.fieldCount = n + 2;
      this.lastWasValue = false;
      this.valueStarted = false;
      return 0;
    }
    fields[this.fieldCount - 2] += this.chunk.toString('latin1', start, end);
    return 0;
  }

  /** The value of the field being read has had a piece. */
  private valueStarted = false;

  onHeaderValue(start: number, end: number): number {
    this.lastWasValue = true;
    const i = this.fieldCount - 1;
    if (!this.valueStarted) {
      this.valueStarted = true;
      const previous = this.lastHeaderFields[i];
      this.fields[i] = previous === undefined ? this.chunk.toString('latin1', start, end) : sameOrSlice(previous, this.chunk, start, end);
    } else {
      this.fields[i] += this.chunk.toString('latin1', start, end);
    }
    return 0;
  }

  onHeadersComplete(status: number, upgrade: boolean): number {
    this.status = status;
    this.upgradeFlag = upgrade;
    this.headPending = true;
    const skip = this.onHead(this);
    if (skip !== 0) return skip; // the head's end is the message's end: learnt at that pause
    this.pause = 'head';
    return LLHTTP_PAUSE;
  }

  onBody(start: number, end: number): number {
    this.bodyBytes += end - start;
    return 0;
  }

  onMessageComplete(): number {
    if (this.finishing) {
      this.pause = 'end';
      return 0;
    }
    this.pause = 'end';
    return LLHTTP_PAUSE;
  }

  headers(): HeaderList {
    const fields = this.fields;
    const count = this.fieldCount;
    const previous = this.lastHeaderFields;
    let same = count === previous.length;
    for (let i = 0; i < count; i += 2) {
      // llhttp strips leading whitespace of a value, not trailing (RFC 9112 §5: OWS around it).
      // The regular expression runs only when the value ends in SP/HTAB (rare): a char check first.
      const value = fields[i + 1]!;
      const last = value.charCodeAt(value.length - 1);
      // toLowerCase returns a lower-case name itself (no copy): known names already are.
      fields[i] = fields[i]!.toLowerCase();
      if (last === 0x20 || last === 0x09) fields[i + 1] = value.replace(/[ \t]+$/, '');
      if (same && (fields[i] !== previous[i] || fields[i + 1] !== previous[i + 1])) same = false;
    }
    if (same) return this.lastHeaders;
    const out: Array<readonly [string, string]> = [];
    for (let i = 0; i < count; i += 2) out.push([fields[i]!, fields[i + 1]!]);
    this.lastHeaders = out;
    this.lastHeaderFields = fields.slice(0, count);
    return out;
  }
}

export class Http1Parser extends StreamParserBase {
  readonly protocol = 'http' as const;
  private readonly req: MessageReader;
  private readonly res: MessageReader;
  private reqMessageStart = 0;
  private resMessageStart = 0;
  private nextRequestId = 0;
  private currentRequest: PendingRequest | null = null;
  /** Requests waiting for their final response, oldest first. */
  private readonly awaiting: PendingRequest[] = [];
  private currentResponse: { requestId: number | null; interim: boolean; answered: PendingRequest | null; switching: boolean } | null = null;
  /** Set while the client waits for the answer to an Upgrade/CONNECT request. */
  private held: HeldClientBytes | null = null;
  /** llhttp stopped after an Upgrade/CONNECT request (HPE_PAUSED_UPGRADE). */
  private clientUpgradePaused = false;
  private resumeClient = false;
  private switched: { requestId: number | null; responseStart: number; kind: 'upgrade' | 'connect'; protocol: string; clientOffset: number; serverOffset: number; http2Settings: string | null } | null = null;
  private h2: Http2Parser | null = null;
  /** The response head being read decides the body (set by onResponseHead, used at the pause). */
  private responseHead: { skip: number; request: PendingRequest | null } | null = null;

  constructor() {
    super();
    this.req = new MessageReader('request', () => 0);
    this.res = new MessageReader('response', (r) => this.responseSkip(r));
  }

  /** Frees both directions' llhttp state (the connection closed). */
  dispose(): void {
    this.req.ll.dispose();
    this.res.ll.dispose();
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
    const consumed = this.run(this.req, 'client', chunk, base);
    if (this.held !== null && consumed < chunk.length) this.hold(chunk.subarray(consumed), base + consumed);
    this.checkHeadSize(this.req, 'client', base + chunk.length, this.reqMessageStart);
  }

  private parseServer(chunk: Buffer, base: number): void {
    const consumed = this.run(this.res, 'server', chunk, base);
    if (this.switched !== null) {
      this.completeSwitch(chunk.subarray(consumed));
      return;
    }
    this.checkHeadSize(this.res, 'server', base + chunk.length, this.resMessageStart);
    if (this.resumeClient) {
      this.resumeClient = false;
      const held = this.held;
      this.held = null;
      if (this.clientUpgradePaused) {
        this.clientUpgradePaused = false;
        this.req.ll.resumeAfterUpgrade();
      }
      if (held !== null) {
        let at = this.offset('client') - held.bytes;
        for (const part of held.parts) {
          this.parseClient(part, at);
          at += part.length;
        }
      }
    }
  }

  /**
   * Runs llhttp over a chunk, acting on each pause (a head or a message ended there). Returns the
   * bytes consumed: fewer than the chunk when llhttp stopped for an Upgrade/CONNECT.
   */
  private run(reader: MessageReader, side: Side, chunk: Buffer, base: number): number {
    reader.chunk = chunk;
    let from = 0;
    for (;;) {
      const code = reader.ll.execute(chunk, from);
      if (code === LLHTTP_OK) return chunk.length;
      const stoppedAt = reader.ll.stoppedAt;
      const at = base + stoppedAt;
      if (code === LLHTTP_PAUSED) {
        const what = reader.pause;
        reader.pause = null;
        reader.ll.resume();
        if (what === 'head') this.headEnded(reader, side, at);
        else if (what === 'end') this.messageEnded(reader, side, at);
        from = stoppedAt;
        if (this.switched !== null && side === 'server') return from;
        continue;
      }
      if (code === LLHTTP_PAUSED_UPGRADE) {
        if (side === 'client') {
          // llhttp stops after a body-less Upgrade/CONNECT request, as Node's server does: hold
          // what follows until the server says whether the protocol switches.
          this.clientUpgradePaused = true;
          const request = this.awaiting[this.awaiting.length - 1];
          if (this.held === null && request !== undefined) this.held = { requestId: request.id, parts: [], bytes: 0 };
        }
        return stoppedAt;
      }
      this.fail(MalformedStreamError, side, at, reader.ll.errorText(code));
    }
  }

  private headEnded(reader: MessageReader, side: Side, at: number): void {
    reader.headPending = false;
    reader.inHead = false;
    if (side === 'client') this.onRequestHead(reader, at);
    else this.onResponseHead(reader, at);
  }

  private messageEnded(reader: MessageReader, side: Side, at: number): void {
    if (reader.headPending) this.headEnded(reader, side, at); // bodiless: the head ends the message
    if (side === 'client') this.onRequestComplete(at);
    else this.onResponseComplete(at);
  }

  private checkHeadSize(reader: MessageReader, side: Side, at: number, messageStart: number): void {
    if (reader.inHead && at - messageStart > HTTP1_MAX_HEAD_BYTES) {
      this.fail(HeadTooLargeError, side, messageStart, `message head exceeds ${HTTP1_MAX_HEAD_BYTES} bytes`);
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

  /**
   * RFC 9112 §6: body framing as llhttp applies it (it already refused Transfer-Encoding with
   * Content-Length, a non-final chunked, bad lengths); what it tolerates and we do not: two
   * Content-Length fields, even equal (RFC 9110 §8.6 lets a recipient reject them; proxies that
   * merge them differently are a smuggling vector).
   */
  private framing(headers: HeaderList, side: Side, messageStart: number, isRequest: boolean): Http1BodyFraming {
    let lengths = 0;
    let length: string | null = null;
    let teValues: string[] | null = null;
    for (let i = 0; i < headers.length; i++) {
      const name = headers[i]![0];
      const value = headers[i]![1];
      if (name === 'content-length') {
        lengths++;
        length ??= value;
      } else if (name === 'transfer-encoding') (teValues ??= []).push(value);
    }
    if (lengths > 1) this.fail(MalformedStreamError, side, messageStart, 'more than one Content-Length field');
    const te = teValues === null ? [] : tokens(teValues.join(',') || null);
    if (te.length > 0) return te[te.length - 1] === 'chunked' ? { kind: 'chunked' } : { kind: 'until-close' };
    if (length !== null) return Number(length) === 0 ? { kind: 'none' } : { kind: 'length', length: Number(length) };
    return isRequest ? { kind: 'none' } : { kind: 'until-close' };
  }

  private onRequestHead(reader: MessageReader, headEnd: number): void {
    const start = this.reqMessageStart;
    if (headEnd - start > HTTP1_MAX_HEAD_BYTES) {
      this.fail(HeadTooLargeError, 'client', start, `request head exceeds ${HTTP1_MAX_HEAD_BYTES} bytes`);
    }
    const method = reader.ll.method;
    const target = reader.target;
    const headers = reader.headers();
    // RFC 9112 §3.2: a server answers 400 to an HTTP/1.1 request without exactly one Host (Node
    // and nginx do): which host such a request is for is not ours to guess.
    const hosts = count(headers, 'host');
    if (hosts > 1) this.fail(MalformedStreamError, 'client', start, 'more than one Host field (RFC 9112 §3.2)');
    if (hosts === 0 && reader.ll.version === '1.1') this.fail(MalformedStreamError, 'client', start, 'HTTP/1.1 request without Host (RFC 9112 §3.2)');
    const body = this.framing(headers, 'client', start, true);
    if (body.kind !== 'none' && BODYLESS_METHODS.has(method)) {
      // A server that ignores a GET body runs it as the next request, which we never decided.
      this.fail(MalformedStreamError, 'client', start, `${method} request with a body (request smuggling risk)`);
    }
    const connect = method === 'CONNECT';
    const upgrade = reader.upgradeFlag && !connect ? (tokens(firstValue(headers, 'upgrade'))[0] ?? null) : null;
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
      version: reader.ll.version,
      headers,
      upgrade,
      expectContinue: expect !== null && expect.trim().toLowerCase() === '100-continue',
      body,
    });
  }

  private onRequestComplete(end: number): void {
    const request = this.currentRequest;
    this.currentRequest = null;
    if (request === null) return;
    request.end = end;
    this.emit({ type: 'http.request-end', side: 'client', start: this.reqMessageStart, end, id: request.id, bodyBytes: this.req.bodyBytes });
    this.reqMessageStart = end;
  }

  /**
   * Called inside llhttp's headers-complete callback: what llhttp is to do with the body (as
   * Node's HTTP client answers it): 1 = none (HEAD, 1xx, 204, 304), 2 = none and the protocol
   * switches (101, 2xx to CONNECT), 0 = as the headers say.
   */
  private responseSkip(reader: MessageReader): number {
    const status = reader.status;
    const request = this.awaiting[0] ?? null;
    let skip = 0;
    if (status === 101 || (request !== null && request.connect && status >= 200 && status < 300)) skip = 2;
    else if (status < 200 || status === 204 || status === 304) skip = 1;
    else if (request !== null && request.method === 'HEAD') skip = 1;
    this.responseHead = { skip, request };
    return skip;
  }

  private onResponseHead(reader: MessageReader, headEnd: number): void {
    const start = this.resMessageStart;
    if (headEnd - start > HTTP1_MAX_HEAD_BYTES) {
      this.fail(HeadTooLargeError, 'server', start, `response head exceeds ${HTTP1_MAX_HEAD_BYTES} bytes`);
    }
    const headers = reader.headers();
    const status = reader.status;
    const { skip, request } = this.responseHead ?? { skip: 0, request: null };
    this.responseHead = null;
    const interim = status >= 100 && status < 200 && status !== 101;
    let body: Http1BodyFraming = this.framing(headers, 'server', start, false);
    if (skip !== 0) body = { kind: 'none' };
    const switching = skip === 2;
    this.currentResponse = { requestId: request?.id ?? null, interim, answered: interim ? null : request, switching };
    this.emit({
      type: 'http.response',
      side: 'server',
      start,
      end: headEnd,
      requestId: request?.id ?? null,
      status,
      reason: reader.reason,
      version: reader.ll.version,
      headers,
      interim,
      body,
    });
    if (request === null) {
      // A response nobody asked for: the server ran something we never saw (a request smuggled
      // in a body it ignored). Nothing more from this connection can be trusted.
      this.fail(ProtocolViolationError, 'server', start, `HTTP ${status} response with no request outstanding (desynchronised)`);
    }
    if (!switching) return;
    if (request.connect && status !== 101) {
      this.switched = { requestId: request.id, responseStart: start, kind: 'connect', protocol: request.authority, clientOffset: request.end >= 0 ? request.end : this.reqMessageStart, serverOffset: headEnd, http2Settings: null };
      return;
    }
    // RFC 9110 §7.8: a 101 switches to a protocol the request offered, named in its Upgrade field.
    const offered = request.upgrade;
    const named = tokens(firstValue(headers, 'upgrade'));
    if (offered === null || request.end < 0) {
      this.fail(ProtocolViolationError, 'server', start, `101 Switching Protocols to a request that asked for no upgrade`);
    }
    if (named.length !== 1 || named[0] !== offered) {
      this.fail(ProtocolViolationError, 'server', start, `101 names ${JSON.stringify(named.join(', '))}, the request asked for ${JSON.stringify(offered)}`);
    }
    this.switched = { requestId: request.id, responseStart: start, kind: 'upgrade', protocol: offered, clientOffset: request.end, serverOffset: headEnd, http2Settings: request.http2Settings };
  }

  private onResponseComplete(end: number): void {
    const response = this.currentResponse;
    this.currentResponse = null;
    if (response === null) return;
    this.emit({ type: 'http.response-end', side: 'server', start: this.resMessageStart, end, requestId: response.requestId, bodyBytes: this.res.bodyBytes });
    this.resMessageStart = end;
    if (response.answered !== null) {
      this.awaiting.shift();
      if (this.held !== null && this.held.requestId === response.answered.id && !response.switching) {
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
      if (this.held !== null || this.clientUpgradePaused) return;
      if (this.offset('client') > this.reqMessageStart) this.truncated('client', offset, 'an HTTP request');
      return;
    }
    // A body read until the server closes ends here (llhttp calls message-complete from finish).
    const reader = this.res;
    reader.finishing = true;
    const code = reader.ll.finish();
    reader.finishing = false;
    if (reader.pause === 'end') {
      reader.pause = null;
      this.messageEnded(reader, 'server', offset);
    }
    if (code !== LLHTTP_OK || this.offset('server') > this.resMessageStart) this.truncated('server', offset, 'an HTTP response');
  }
}
