// The contract between the L7 firewall (src/enforcement) and tunnel detection. Detectors see
// what the parsers saw — never sockets — and answer with findings; enforcement decides, from
// the config's `tunnels:` mode for the finding's kind, whether to cut or only alert.
import type { ConnectionFacts } from '../enforcement/types.js';
import type { HeaderList } from '../protocols/types.js';
import type { IcmpTunnelMonitor } from './icmp-tunnel.js';
import type { ClientHelloFacts } from './tls-shape.js';

export type TunnelKind =
  | 'protocol-mismatch' // not the protocol the port is declared (or learned) to carry
  | 'ssh' // SSH where it was not declared: any port, inside HTTP bodies, CONNECT or WebSocket streams
  | 'http-connect' // an HTTP CONNECT request
  | 'http-upgrade' // an Upgrade to something the rules do not expect
  | 'http-carrier' // HTTP used as a carrier for opaque streams (httptunnel and the like)
  | 'dns-tunnel' // data smuggled in DNS names or answers (iodine, dnscat2 and the like)
  | 'icmp-tunnel' // data carried in ICMP echo payloads (ptunnel-ng, icmptunnel, hans and the like)
  | 'http-desync' // an HTTP/1 response with no request outstanding: the server ran bytes we passed as a body
  | 'vpn' // a VPN's own framing on a TCP stream (OpenVPN)
  | 'encrypted-stream'; // a stream random from its first byte: a fully encrypted proxy (shadowsocks, VMess, obfs4)

export interface TunnelFinding {
  kind: TunnelKind;
  /** What gave it away: the bytes (escaped, short) or the fields and numbers. */
  evidence: string;
  /** 0..1. */
  confidence: number;
  /** What the traffic was expected to be (the port's declared protocol, or what it claimed). */
  expected?: string;
  /** What it was found to be. */
  detected?: string;
}

/** Per connection; every method is cheap and never throws. */
export interface TunnelInspector {
  /** The connection's protocol was recognised (from the client's first bytes or the server's greeting). */
  onProtocol(detected: string, firstBytes: Buffer, from: 'client' | 'server'): TunnelFinding | null;
  /** An HTTP/1 request head (also CONNECT and Upgrade requests); `chunked` when its body is. */
  onHttpRequest(request: { method: string; path: string; host: string | null; headers: HeaderList; upgrade: string | null; chunked?: boolean }): TunnelFinding | null;
  /** An HTTP/1 response head to the request with that method/path; `chunked` when its body is. */
  onHttpResponse(response: { status: number; headers: HeaderList; chunked?: boolean }): TunnelFinding | null;
  /**
   * Payload bytes that are not protocol framing: HTTP/1 bodies (every byte of each body, as
   * sent: chunked framing included, nothing past the body's end), and the stream after a
   * CONNECT or Upgrade (its first `payloadBudget` bytes per side only).
   */
  onPayload(side: 'client' | 'server', bytes: Buffer): TunnelFinding | null;
  /**
   * HTTP/2 and gRPC: the payload of each DATA frame (padding included) as it arrives, by stream;
   * `end` on the piece that ends a frame carrying END_STREAM.
   */
  onStreamData(side: 'client' | 'server', streamId: number, bytes: Buffer, end: boolean): TunnelFinding | null;
  /** How many payload bytes per side after a switch onPayload wants to see. */
  readonly payloadBudget: number;
  /**
   * TLS: the ClientHello and ServerHello (tls-shape.ts); afterwards the encrypted bytes of each
   * side from the end of its hello, while `tlsWatching` (a few records: then it costs nothing).
   */
  onTlsHello(hello: ClientHelloFacts): void;
  onTlsServerHello(version: number, cipherSuite: number): void;
  onTlsBytes(side: 'client' | 'server', bytes: Buffer): TunnelFinding | null;
  readonly tlsWatching: boolean;
}

/** Per pod (sidecar): DNS tunnelling is a pattern over many queries, not one. */
export interface DnsTunnelMonitor {
  onQuery(name: string, type: string, now: number): TunnelFinding | null;
  onResponse(name: string, type: string, size: number, answers: number, now: number): TunnelFinding | null;
}

export interface TunnelDetection {
  forConnection(facts: ConnectionFacts, declaredProtocol: string | undefined): TunnelInspector;
  readonly dns: DnsTunnelMonitor;
  /** Per pod: ICMP echo tunnels, fed by the non-TCP guard. */
  readonly icmp: IcmpTunnelMonitor;
}
