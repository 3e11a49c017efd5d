// The DNS listener (15053/udp): `sidewall init --redirect-dns` sends the pod's UDP port 53 here.
// Each query gets a verdict (a denied one is answered REFUSED, RFC 1035 RCODE 5) and goes, with
// its bytes unchanged but for the ID, to the resolver the pod was configured with
// (/etc/resolv.conf); the answer goes back to the app, whose kernel sees it come from the
// address it asked (conntrack undoes the REDIRECT). The proxy's own sockets carry its mark
// (src/net/socket-mark.ts), which is not redirected, so its upstream queries leave directly and
// only a marked socket receives what is sent to the listener.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { Decision } from '../policy/index.js';
import { buildRefused, parseDnsMessage } from '../protocols/dns/dns-message.js';
import type { DnsMessage } from '../protocols/types.js';
import { requestFacts } from '../enforcement/http-facts.js';
import { tunnelDenial } from '../enforcement/tunnel-verdict.js';
import type { ConnectionFacts, TunnelMode } from '../enforcement/types.js';
import type { CompiledPolicy, Direction } from '../policy/index.js';
import type { DnsTunnelMonitor, TunnelFinding } from '../tunnels/types.js';
import { bindMarkedUdp } from './socket-mark.js';

export interface DnsQueryOutcome {
  flowId: string;
  facts: ConnectionFacts;
  l7: Record<string, unknown>;
  decision: Decision;
  durationMs: number;
  reason?: string;
}

export interface DnsUdpProxyOptions {
  port: number;
  /** The upstream resolver's address (default: the first nameserver of /etc/resolv.conf). */
  resolver: string;
  policy: () => CompiledPolicy;
  /** Workload identity of an address, for rules and records. */
  identify: (ip: string) => ConnectionFacts['src']['workload'];
  isLocal: (ip: string) => boolean;
  monitor: DnsTunnelMonitor | null;
  tunnelMode: (kind: string, protocol: string, port: number) => TunnelMode;
  onQuery: (outcome: DnsQueryOutcome) => void;
  onAlert: (flowId: string, facts: ConnectionFacts, finding: TunnelFinding, blocked: boolean) => void;
  nextFlowId: () => string;
  onError?: (err: unknown) => void;
  /** A datagram that is not a DNS query we can read (answered FORMERR). */
  onMalformed?: (err: unknown) => void;
  /** True while the workload identities may be out of date. */
  identityStale?: () => boolean;
  /** How long a forwarded query waits for the resolver. */
  timeoutMs?: number;
  /** SO_MARK of the listener and upstream sockets (the proxy's identity); undefined: unmarked. */
  socketMark?: number;
}

interface Pending {
  client: RemoteInfo;
  socket: Socket;
  originalId: number;
  flowId: string;
  facts: ConnectionFacts;
  l7: Record<string, unknown>;
  decision: Decision;
  startedAt: number;
  timer: NodeJS.Timeout;
}

const ALERT_INTERVAL_MS = 10_000;

/** The last two labels of a name: enough to group a tunnel's queries under its domain. */
function parentDomain(name: string): string {
  const labels = name.split('.');
  return labels.slice(-2).join('.');
}

/** A header-only answer: the query's ID and opcode, QR set, RCODE 1 (FORMERR), no sections. */
function formErr(query: Buffer): Buffer {
  const out = Buffer.alloc(12);
  query.copy(out, 0, 0, 2);
  out[2] = 0x80 | (query[2]! & 0x78);
  out[3] = 0x01;
  return out;
}

/** The first `nameserver` of a resolv.conf, or undefined. */
export function resolverFromResolvConf(path = '/etc/resolv.conf'): string | undefined {
  try {
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      const m = /^\s*nameserver\s+(\S+)/.exec(line);
      if (m?.[1] !== undefined && isIP(m[1].split('%')[0] ?? '') !== 0) return m[1];
    }
  } catch {
    // no resolv.conf: the caller decides
  }
  return undefined;
}

export class DnsUdpProxy {
  private readonly listeners: Socket[] = [];
  private upstream: Socket | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = Math.floor(Math.random() * 0x10000);

  constructor(private readonly options: DnsUdpProxyOptions) {}

  async listen(ipv6: boolean): Promise<void> {
    // REDIRECT sends a pod's own datagrams to the loopback address; answering from exactly that
    // address is what lets conntrack turn the answer back into one from the resolver it asked.
    const families: Array<['udp4' | 'udp6', string]> = [['udp4', '127.0.0.1']];
    if (ipv6) families.push(['udp6', '::1']);
    for (const [type, host] of families) {
      const socket = createSocket({ type, ipv6Only: type === 'udp6' });
      socket.on('message', (msg, rinfo) => {
        try {
          this.onQuery(socket, msg, rinfo);
        } catch (err) {
          this.options.onError?.(err); // one bad datagram must not take the sidecar down
        }
      });
      socket.on('error', () => undefined);
      try {
        await this.bind(socket, type === 'udp6', host, this.options.port);
      } catch (err) {
        // All or nothing, as the TCP listeners: the caller reports the sidecar unready and retries.
        for (const s of [socket, ...this.listeners.splice(0)]) {
          try {
            s.close();
          } catch {
            // never bound: nothing to close
          }
        }
        throw err;
      }
      this.listeners.push(socket);
    }
    const upstream = createSocket(isIP(this.options.resolver) === 6 ? 'udp6' : 'udp4');
    await this.bind(upstream, isIP(this.options.resolver) === 6);
    upstream.on('message', (msg) => {
      try {
        this.onAnswer(msg);
      } catch (err) {
        this.options.onError?.(err);
      }
    });
    upstream.on('error', () => undefined);
    this.upstream = upstream;
  }

  /** Binds on a marked descriptor when a mark is configured, else as Node would (port 0: any). */
  private async bind(socket: Socket, ipv6: boolean, host?: string, port = 0): Promise<void> {
    const mark = this.options.socketMark;
    if (mark !== undefined) return bindMarkedUdp(socket, mark, ipv6, host, port);
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
  }

  private facts(client: RemoteInfo): ConnectionFacts {
    const resolver = this.options.resolver;
    const direction: Direction = this.options.isLocal(resolver) ? 'intra' : 'egress';
    const srcWorkload = this.options.identify(client.address);
    const dstWorkload = this.options.identify(resolver);
    const facts: ConnectionFacts = {
      direction,
      src: srcWorkload === undefined ? { ip: client.address, port: client.port } : { ip: client.address, port: client.port, workload: srcWorkload },
      dst: dstWorkload === undefined ? { ip: resolver, port: 53 } : { ip: resolver, port: 53, workload: dstWorkload },
    };
    if (this.options.identityStale?.() === true) facts.identityStale = true;
    return facts;
  }

  private onQuery(listener: Socket, msg: Buffer, client: RemoteInfo): void {
    let query: DnsMessage;
    try {
      query = parseDnsMessage(msg);
    } catch (err) {
      // RFC 1035 §4.1.1: a query we cannot read gets FORMERR (if it has a header to answer).
      this.options.onMalformed?.(err);
      if (msg.length >= 12 && (msg[2]! & 0x80) === 0) listener.send(formErr(msg), client.port, client.address);
      return;
    }
    if (query.isResponse) return;
    const facts = this.facts(client);
    const flowId = this.options.nextFlowId();
    const l7: Record<string, unknown> = { name: query.qname, type: query.qtype };
    const policy = this.options.policy();
    let decision = policy.decide(requestFacts(facts, 'dns', { dns: { name: query.qname, type: query.qtype } }));
    const finding = this.options.monitor?.onQuery(query.qname, query.qtype, Date.now()) ?? null;
    if (finding !== null) {
      const mode = this.options.tunnelMode(finding.kind, 'dns', 53);
      if (mode !== 'off') {
        const denial = tunnelDenial(mode, finding.kind, policy);
        const blocked = denial !== null;
        // A tunnel is thousands of queries: one alert per parent domain and window, not per query.
        if (this.shouldAlert(`${finding.kind}|${blocked}|${parentDomain(query.qname)}`)) this.options.onAlert(flowId, facts, finding, blocked);
        if (denial !== null) decision = denial;
      }
    }
    if (decision.action === 'deny') {
      try {
        listener.send(buildRefused(msg), client.port, client.address);
      } catch {
        // an unparseable question section: no answer
      }
      l7.rcode = 'REFUSED';
      this.options.onQuery({ flowId, facts, l7, decision, durationMs: 0 });
      return;
    }
    const id = this.allocateId();
    const pending: Pending = {
      client,
      socket: listener,
      originalId: query.id,
      flowId,
      facts,
      l7,
      decision,
      startedAt: performance.now(),
      timer: setTimeout(() => this.expire(id), this.options.timeoutMs ?? 5000),
    };
    this.pending.set(id, pending);
    // Our ID multiplexes every app's queries on one upstream socket; the answer gets theirs back.
    msg.writeUInt16BE(id, 0);
    this.upstream?.send(msg, 53, this.options.resolver);
  }

  private readonly alertedAt = new Map<string, number>();

  private shouldAlert(key: string): boolean {
    const now = Date.now();
    const last = this.alertedAt.get(key);
    if (last !== undefined && now - last < ALERT_INTERVAL_MS) return false;
    if (this.alertedAt.size >= 1024) this.alertedAt.clear(); // bounded; worst case a repeated alert
    this.alertedAt.set(key, now);
    return true;
  }

  private allocateId(): number {
    for (let i = 0; i < 0x10000; i++) {
      this.nextId = (this.nextId + 1) & 0xffff;
      if (!this.pending.has(this.nextId)) return this.nextId;
    }
    // 65,536 queries in flight: reuse the oldest slot (its client will time out and retry).
    const oldest = this.pending.keys().next().value as number;
    this.expire(oldest);
    return oldest;
  }

  private onAnswer(msg: Buffer): void {
    if (msg.length < 12) return;
    const id = msg.readUInt16BE(0);
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    msg.writeUInt16BE(p.originalId, 0);
    p.socket.send(msg, p.client.port, p.client.address);
    try {
      const answer = parseDnsMessage(msg, 'server');
      p.l7.rcode = answer.rcodeName;
      p.l7.answers = answer.answerCount;
      const size = answer.answers.reduce((n, a) => n + a.size, 0);
      const finding = this.options.monitor?.onResponse(answer.qname, answer.qtype, size, answer.answerCount, Date.now()) ?? null;
      if (finding !== null && this.options.tunnelMode(finding.kind, 'dns', 53) !== 'off') this.options.onAlert(p.flowId, p.facts, finding, false);
    } catch {
      p.l7.rcode = 'MALFORMED';
    }
    this.options.onQuery({ flowId: p.flowId, facts: p.facts, l7: p.l7, decision: p.decision, durationMs: performance.now() - p.startedAt });
  }

  private expire(id: number): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    this.options.onQuery({ flowId: p.flowId, facts: p.facts, l7: p.l7, decision: p.decision, durationMs: performance.now() - p.startedAt, reason: 'timeout' });
  }

  close(): void {
    for (const id of [...this.pending.keys()]) this.expire(id);
    for (const s of this.listeners) s.close();
    this.upstream?.close();
  }
}
