// The per-connection tunnel inspector: protocol verification when the protocol is known, then
// CONNECT / Upgrade checks on HTTP request heads, and the first bytes of every body and of
// every switched or unparsed stream checked for SSH and, for HTTP bodies, for the carrier
// pattern (see http-carrier.ts). Every method is cheap, bounded by the payload budget, and
// never throws.
import type { ConnectionFacts } from '../enforcement/types.js';
import type { HeaderList } from '../protocols/types.js';
import { recogniseCarrier } from './carriers.js';
import { TlsShapeWatcher, type ClientHelloFacts } from './tls-shape.js';
import { CarrierTracker, classifyBody, contradiction, declaredBody, httptunnelOpen, httptunnelRequest, type BodyDeclaration } from './http-carrier.js';
import { PayloadWindow } from './payload-window.js';
import { checkDeclared, type LearnedPorts } from './protocol-verification.js';
import { findSsh, SSH_LOOKBACK, SshScan, type SshSighting } from './ssh-signature.js';
import { BoundedMap } from './bounded-map.js';
import { ChunkedDecoder } from '../content/dlp/decoders.js';
import type { TunnelFinding, TunnelInspector } from './types.js';
import { WebSocketPayloadReader } from './websocket-frames.js';

/** Payload bytes per body and per stream side the inspector looks at. */
export const PAYLOAD_BUDGET = 512;

export interface InspectorShared {
  learned: LearnedPorts;
  carriers: CarrierTracker;
  /** Upgrade protocols that are expected (lower case). */
  allowedUpgrades: ReadonlySet<string>;
  /** Whether a CONNECT to this authority, or an Upgrade to this protocol, is expected here. */
  isExpected: ((facts: ConnectionFacts, what: { kind: 'connect' | 'upgrade'; target: string }) => boolean) | undefined;
}

type Mode =
  | 'detecting' // nothing known yet
  | 'http' // HTTP/1 bodies come framed by onHttpRequest / onHttpResponse
  | 'stream' // an unparsed stream, or the stream after CONNECT / an Upgrade other than WebSocket
  | 'websocket' // WebSocket frames after an accepted Upgrade
  | 'quiet'; // nothing to look for (TLS-encrypted, h2c after Upgrade)

interface SideState {
  window: PayloadWindow;
  /** Where the next SSH search starts. */
  scanFrom: number;
  /** The body's declaration (HTTP mode), or null for streams. */
  declared: BodyDeclaration | null;
  /** What the payload is, for evidence. */
  what: string;
  /** Body classified (HTTP mode): nothing more to decide for it. */
  settled: boolean;
  ws: WebSocketPayloadReader | null;
  /** An untyped request body: does it open with httptunnel's TUNNEL_OPEN frame? */
  openCheck: boolean;
  /** HTTP mode: SSH anywhere in the body (the window only holds its first bytes). */
  ssh: SshScan | null;
  /** HTTP mode, a chunked body: the decoder (SSH is looked for in the data, not the framing). */
  chunked: ChunkedDecoder | null;
}

function side(what: string): SideState {
  return { window: new PayloadWindow(PAYLOAD_BUDGET), scanFrom: 0, declared: null, what, settled: true, ws: null, openCheck: false, ssh: null, chunked: null };
}

/** HTTP/2 streams whose DATA is being scanned at once, per connection (a stream's state goes at its END_STREAM). */
const H2_STREAMS = 256;

function header(headers: HeaderList, name: string): string | null {
  for (const [n, v] of headers) if (n === name) return v;
  return null;
}

export class ConnectionInspector implements TunnelInspector {
  readonly payloadBudget = PAYLOAD_BUDGET;
  private mode: Mode = 'detecting';
  private readonly client = side('client stream');
  private readonly server = side('server stream');
  private pendingSwitch: { kind: 'connect' | 'websocket' | 'other'; target: string } | null = null;
  private lastRequest = '';
  private readonly pairKey: string;
  /** Kinds already reported on this connection: one alert per kind is enough. */
  private reported = 0;
  /** The client stream is one no parser recognised (or a CONNECT/Upgrade stream): look for a carrier in its first bytes. */
  private carrierPending = false;
  /** A CONNECT to port 443 was established: its client stream must begin as TLS. */
  private tlsInside = false;
  /** TLS: the record-shape watcher (SSH inside TLS), until it decides. */
  private tls: TlsShapeWatcher | null = null;

  constructor(
    private readonly facts: ConnectionFacts,
    private readonly declared: string | undefined,
    private readonly shared: InspectorShared,
  ) {
    this.pairKey = `${facts.src.ip} → ${facts.dst.ip}:${facts.dst.port}`;
  }

  onProtocol(detected: string, firstBytes: Buffer, from: 'client' | 'server'): TunnelFinding | null {
    this.mode = detected === 'http' ? 'http' : detected === 'tls' || detected === 'http2' || detected === 'dns' ? 'quiet' : 'stream';
    this.carrierPending = detected === 'tcp';
    if (this.mode === 'stream' && from === 'client') this.client.window.append(firstBytes);
    const finding = checkDeclared(this.declared, detected, firstBytes, from);
    if (finding !== null) return this.report(finding);
    if (this.declared !== undefined) return null;
    const port = `${this.facts.dst.ip}:${this.facts.dst.port}`;
    return this.report(this.shared.learned.check(port, detected, firstBytes, from, true));
  }

  onTlsHello(hello: ClientHelloFacts): void {
    this.tls = new TlsShapeWatcher(hello);
  }

  onTlsServerHello(version: number, cipherSuite: number): void {
    this.tls?.onServerHello(version, cipherSuite);
  }

  onTlsBytes(who: 'client' | 'server', bytes: Buffer): TunnelFinding | null {
    const watcher = this.tls;
    if (watcher === null) return null;
    const finding = watcher.feed(who, bytes);
    if (watcher.done) this.tls = null;
    return this.report(finding);
  }

  get tlsWatching(): boolean {
    return this.tls !== null;
  }

  onHttpRequest(request: { method: string; path: string; host: string | null; headers: HeaderList; upgrade: string | null; chunked?: boolean }): TunnelFinding | null {
    this.mode = 'http';
    this.lastRequest = `${request.method} ${request.path.length > 64 ? `${request.path.slice(0, 61)}...` : request.path}`;
    this.startBody(this.client, request.headers, `request body of ${this.lastRequest}`, request.chunked === true);
    const carrier = this.report(this.shared.carriers.noteRequest(this.pairKey, this.lastRequest));
    if (carrier !== null) return carrier;
    if (httptunnelRequest(request.method, request.path)) {
      // At the head: neither this request nor its body reaches hts, and hts's answer to the
      // other connection of the pair never comes.
      return this.report(this.shared.carriers.flag(this.pairKey, `${this.lastRequest} is httptunnel's request (htc sends GET and POST /index.html?crap=<number>)`, 4));
    }
    this.client.openCheck = request.method === 'POST' && this.client.declared?.kind === 'absent';
    const expected = this.shared.isExpected;
    if (request.method === 'CONNECT') {
      this.pendingSwitch = { kind: 'connect', target: request.path };
      if (expected?.(this.facts, { kind: 'connect', target: request.path }) === true) return null;
      return this.report({ kind: 'http-connect', evidence: `CONNECT ${request.path}${request.host !== null && request.host !== request.path ? ` (Host: ${request.host})` : ''}: a tunnel to another destination through ${this.facts.dst.ip}:${this.facts.dst.port}`, confidence: 0.9, expected: 'http', detected: 'http-connect' });
    }
    if (request.upgrade === null) {
      this.pendingSwitch = null;
      return null;
    }
    const asked = request.upgrade.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t.length > 0);
    const first = asked[0] ?? request.upgrade;
    this.pendingSwitch = { kind: asked.includes('websocket') ? 'websocket' : 'other', target: first };
    const allowed = asked.length > 0 && asked.every((t) => this.shared.allowedUpgrades.has(t.split('/', 1)[0] ?? t));
    if (allowed || expected?.(this.facts, { kind: 'upgrade', target: request.upgrade }) === true) return null;
    return this.report({ kind: 'http-upgrade', evidence: `${this.lastRequest} asks to switch to ${JSON.stringify(header(request.headers, 'upgrade') ?? request.upgrade)}; expected upgrades: ${[...this.shared.allowedUpgrades].join(', ') || 'none'}`, confidence: 0.85, expected: 'http', detected: first });
  }

  onHttpResponse(response: { status: number; headers: HeaderList; chunked?: boolean }): TunnelFinding | null {
    const pending = this.pendingSwitch;
    if (pending !== null && ((pending.kind === 'connect' && response.status >= 200 && response.status < 300) || (pending.kind !== 'connect' && response.status === 101))) {
      this.pendingSwitch = null;
      this.mode = pending.kind === 'websocket' ? 'websocket' : pending.target === 'h2c' ? 'quiet' : 'stream';
      this.carrierPending = this.mode === 'stream';
      this.tlsInside = pending.kind === 'connect' && /:443$/.test(pending.target);
      const label = pending.kind === 'connect' ? `CONNECT ${pending.target} stream` : `${pending.target} stream`;
      for (const [s, who] of [[this.client, 'client'], [this.server, 'server']] as const) {
        s.window.reset();
        s.scanFrom = 0;
        s.declared = null;
        s.settled = true;
        s.what = `${who} side of the ${label}`;
        s.ws = this.mode === 'websocket' ? new WebSocketPayloadReader() : null;
        s.openCheck = false;
        s.chunked = null;
      }
      return null;
    }
    if (response.status >= 100 && response.status < 200) return null;
    this.startBody(this.server, response.headers, `response body (${response.status}) to ${this.lastRequest}`, response.chunked === true);
    return null;
  }

  onPayload(who: 'client' | 'server', bytes: Buffer): TunnelFinding | null {
    if (this.mode === 'quiet' || this.mode === 'detecting') return null;
    const s = who === 'client' ? this.client : this.server;
    if (this.mode === 'http') return this.onBody(s, who, bytes);
    if (s.window.full) return null;
    if (s.ws !== null && !s.ws.malformed) s.ws.feed(bytes, s.window);
    else s.window.append(bytes);
    const ssh = findSsh(s.window.bytes, s.scanFrom);
    s.scanFrom = Math.max(0, s.window.length - SSH_LOOKBACK);
    if (ssh !== null) {
      const expected = this.mode === 'websocket' ? 'websocket' : this.declared;
      return this.report({
        kind: 'ssh',
        evidence: `${s.what} carries an SSH identification string${ssh.encoding === 'base64' ? ' in base64' : ''} at byte ${ssh.offset}: ${ssh.excerpt}`,
        confidence: ssh.encoding === 'base64' ? 0.85 : 0.97,
        detected: 'ssh',
        ...(expected !== undefined ? { expected } : {}),
      });
    }
    if (this.tlsInside && who === 'client' && s.window.length > 0) {
      // An allowed `CONNECT *:443` carries TLS (RFC 8446 §5.1: a handshake record, 0x16 0x03).
      this.tlsInside = false;
      const b = s.window.bytes;
      if (b[0] !== 0x16 || (b.length > 1 && b[1] !== 0x03)) {
        return this.report({ kind: 'protocol-mismatch', evidence: `${s.what} should carry TLS (port 443) but begins ${s.window.hexHead()}`, confidence: 0.9, expected: 'tls', detected: 'unknown' });
      }
    }
    if (this.carrierPending && who === 'client') {
      const carrier = recogniseCarrier(s.window);
      if (carrier !== 'more') this.carrierPending = false;
      if (carrier !== 'more' && carrier !== null) return this.report({ ...carrier, ...(this.declared !== undefined ? { expected: this.declared } : {}) });
    }
    return null;
  }

  /** HTTP/1 body bytes as they come (all of each body: the enforcer bounds them to the body). */
  private onBody(s: SideState, who: 'client' | 'server', bytes: Buffer): TunnelFinding | null {
    const declared = s.declared;
    if (declared === null) return null;
    const decoder = s.chunked;
    if (decoder === null) return this.onBodyPiece(s, who, bytes, declared);
    if (decoder.error !== null || decoder.done) return null;
    for (const piece of decoder.push(bytes)) {
      const finding = this.onBodyPiece(s, who, piece, declared);
      if (finding !== null) return finding;
    }
    return null;
  }

  private onBodyPiece(s: SideState, who: 'client' | 'server', piece: Buffer, declared: BodyDeclaration): TunnelFinding | null {
    s.ssh ??= new SshScan(PAYLOAD_BUDGET);
    const ssh = s.ssh.feed(piece);
    if (ssh !== null) return this.sshFinding(s.what, ssh, 'http');
    // Past the first bytes of the body, the SSH scan is all that is left to do.
    if (s.window.full) return null;
    s.window.append(piece);
    if (s.openCheck) {
      const open = httptunnelOpen(s.window.bytes, s.window.full);
      if (open !== 'more') s.openCheck = false;
      if (open === true) {
        return this.report(this.shared.carriers.flag(this.pairKey, `${s.what} (no content-type) opens with httptunnel's TUNNEL_OPEN frame: ${s.window.hexHead()}`, 3));
      }
    }
    if (s.settled) return null;
    const verdict = classifyBody(s.window, false);
    if (verdict === 'pending') return null;
    s.settled = true;
    if (verdict === 'text') return null;
    return this.report(this.shared.carriers.observe(this.pairKey, { side: who, declared, contradiction: contradiction(declared, s.window), what: s.what, window: s.window }));
  }

  /** HTTP/2 and gRPC: the DATA of a stream, as it arrives; `end` at its END_STREAM. */
  private h2: BoundedMap<number, SshScan> | null = null;

  /** For a stream whose DATA comes whole in one piece (most requests and responses): no state kept. */
  private scratch: SshScan | null = null;

  onStreamData(who: 'client' | 'server', streamId: number, bytes: Buffer, end: boolean): TunnelFinding | null {
    const key = streamId * 2 + (who === 'server' ? 1 : 0);
    let scan = this.h2?.get(key);
    if (scan === undefined && end) {
      scan = this.scratch ??= new SshScan(PAYLOAD_BUDGET);
      scan.reset();
    } else if (scan === undefined) {
      scan = new SshScan(PAYLOAD_BUDGET);
      (this.h2 ??= new BoundedMap(H2_STREAMS)).set(key, scan);
    } else if (end) this.h2?.delete(key);
    const ssh = scan.feed(bytes);
    if (ssh === null) return null;
    return this.sshFinding(`${who === 'client' ? 'request' : 'response'} DATA of HTTP/2 stream ${streamId}`, ssh, 'http2');
  }

  private sshFinding(what: string, ssh: SshSighting, expected: string): TunnelFinding | null {
    return this.report({
      kind: 'ssh',
      evidence: `${what} carries an SSH identification string${ssh.encoding === 'base64' ? ' in base64' : ''} at byte ${ssh.offset}: ${ssh.excerpt}`,
      confidence: ssh.encoding === 'base64' ? 0.85 : 0.97,
      detected: 'ssh',
      expected,
    });
  }

  /**
   * A new body starts on that side. A body shorter than the entropy sample that showed no binary
   * bytes stays unclassified: too little to call it opaque.
   */
  private startBody(s: SideState, headers: HeaderList, what: string, chunked: boolean): void {
    s.window.reset();
    s.ssh?.reset();
    s.chunked = chunked ? new ChunkedDecoder() : null;
    s.scanFrom = 0;
    s.declared = declaredBody(headers);
    s.what = what;
    s.settled = false;
    s.ws = null;
    s.openCheck = false;
  }

  private report(finding: TunnelFinding | null): TunnelFinding | null {
    if (finding === null) return null;
    const bit = KIND_BITS[finding.kind];
    if ((this.reported & bit) !== 0) return null;
    this.reported |= bit;
    return finding;
  }
}

const KIND_BITS: Readonly<Record<TunnelFinding['kind'], number>> = {
  'protocol-mismatch': 1,
  ssh: 2,
  'http-connect': 4,
  'http-upgrade': 8,
  'http-carrier': 16,
  'dns-tunnel': 32,
  'http-desync': 64,
  vpn: 128,
  'encrypted-stream': 256,
  'icmp-tunnel': 512, // never on a connection (the non-TCP guard's), listed for the type
};
