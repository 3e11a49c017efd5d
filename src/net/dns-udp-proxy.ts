// The DNS listener (15053/udp): `sidewall init --redirect-dns` sends the pod's UDP port 53 here.
// Each query gets a verdict (a denied one is answered REFUSED, RFC 1035 RCODE 5) and goes, with
// its bytes unchanged but for the ID, to the resolver the pod was configured with
// (/etc/resolv.conf); the answer goes back to the app, whose kernel sees it come from the
// address it asked (conntrack undoes the REDIRECT). The proxy's own sockets carry its mark
// (src/net/socket-mark.ts), which is not redirected, so its upstream queries leave directly and
// only a marked socket receives what is sent to the listener.
//
// Forwarding per RFC 5452 (resilience against forged answers): each forwarded query gets a
// random ID (crypto) and its own socket on a random source port (the kernel's ephemeral port
// choice, randomised on Linux), and an answer is accepted only from the resolver's address and
// port 53, with that ID and the same question (name compared case-insensitively, type, class).
// Anything else arriving on that socket is dropped and the query keeps waiting. In-flight
// queries are bounded (MAX_IN_FLIGHT sockets): past that the oldest is expired.
// Decisions (tunnel check, rules, CNAME targets of answers) are protocols/dns/dns-decisions.ts, shared with
// DNS over TCP.
import { randomInt } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { Decision } from '../policy/index.js';
import { buildRefused, parseDnsMessage } from '../protocols/dns/dns-message.js';
import type { DnsMessage } from '../protocols/types.js';
import { answerFinding, checkAnswer, decideQuery } from '../protocols/dns/dns-decisions.js';
import { tunnelDenial } from '../enforcement/tunnel-verdict.js';
import type { ConnectionFacts, TunnelMode } from '../enforcement/types.js';
import type { CompiledPolicy, Direction } from '../policy/index.js';
import type { DnsTunnelMonitor, TunnelFinding } from '../tunnels/types.js';
import { splitName } from '../tunnels/dns-tunnel-monitor.js';
import { bindMarkedUdp } from './socket-mark.js';
import type { CapturedDatagram } from '../capture/store.js';
import { nowMicros } from '../capture/tap.js';

export interface DnsQueryOutcome {
  flowId: string;
  facts: ConnectionFacts;
  l7: Record<string, unknown>;
  decision: Decision;
  durationMs: number;
  reason?: string;
  /** The packet capture holding this query and its answer (capture: true rule, alert). */
  capture?: string;
}

/** A query's datagrams, for the packet captures (src/capture/store.ts datagramFlow). */
export interface DnsDatagrams {
  flowId: string;
  facts: ConnectionFacts;
  decision?: Decision;
  datagrams: CapturedDatagram[];
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
  /** An answer dropped as forged or stray (RFC 5452 checks): why, for a counter. */
  onRejectedAnswer?: (why: 'source' | 'id' | 'question' | 'malformed') => void;
  /** True while a packet capture could want the datagrams (they are kept only then). */
  keepDatagrams?: () => boolean;
  /** A query's datagrams, when kept, once it is over (before its record): the own capture's id. */
  onDatagrams?: (flow: DnsDatagrams) => string | undefined;
}

interface Pending {
  client: RemoteInfo;
  /** The listener the query came in on (the answer leaves from it). */
  socket: Socket;
  /** This query's own upstream socket (random source port). */
  upstream: Socket;
  /** The random ID the query went upstream with. */
  id: number;
  question: { name: string; type: string; class: number };
  originalId: number;
  flowId: string;
  facts: ConnectionFacts;
  l7: Record<string, unknown>;
  decision: Decision;
  startedAt: number;
  timer: NodeJS.Timeout;
  /** The query as the app sent it and the answer as it received it, while a capture could want them. */
  datagrams: CapturedDatagram[] | undefined;
}

const ALERT_INTERVAL_MS = 10_000;
/** Forwarded queries awaiting an answer (one socket each). */
export const MAX_IN_FLIGHT = 1024;

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
  /** In flight, oldest first (Map insertion order), keyed by their upstream socket. */
  private readonly pending = new Map<Socket, Pending>();

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
  }

  /**
   * The one place upstream sockets are made: a fresh UDP socket (marked when a mark is set)
   * bound to a random ephemeral port (RFC 5452 §9.2) before anything is sent.
   */
  async openUpstreamSocket(): Promise<Socket> {
    const ipv6 = isIP(this.options.resolver) === 6;
    const socket = createSocket(ipv6 ? 'udp6' : 'udp4');
    socket.on('error', () => undefined);
    await this.bind(socket, ipv6);
    return socket;
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
    // Kept (a copy) only while a capture could want it: the app's datagram as it sent it.
    const datagrams: CapturedDatagram[] | undefined = this.options.keepDatagrams?.() === true ? [{ micros: nowMicros(), fromClient: true, bytes: Buffer.from(msg) }] : undefined;
    try {
      query = parseDnsMessage(msg);
    } catch (err) {
      this.options.onMalformed?.(err);
      const alerted = this.notDns(msg, client, err);
      // RFC 1035 §4.1.1: a query we cannot read gets FORMERR (if it has a header to answer).
      if (!alerted.blocked && msg.length >= 12 && (msg[2]! & 0x80) === 0) {
        const reply = formErr(msg);
        listener.send(reply, client.port, client.address);
        datagrams?.push({ micros: nowMicros(), fromClient: false, bytes: reply });
      }
      if (alerted.flow !== undefined) {
        const capture = datagrams === undefined ? undefined : this.options.onDatagrams?.({ ...alerted.flow, datagrams });
        // Denied: a request record too, as for a refused query (it names the tunnel rule).
        if (alerted.record !== undefined) this.options.onQuery({ ...alerted.record, ...(capture !== undefined ? { capture } : {}) });
      }
      return;
    }
    if (query.isResponse) return;
    const facts = this.facts(client);
    const flowId = this.options.nextFlowId();
    const l7: Record<string, unknown> = { name: query.qname, type: query.qtype };
    const verdict = decideQuery({ policy: this.options.policy, monitor: this.options.monitor, tunnelMode: this.options.tunnelMode }, facts, query);
    const decision = verdict.decision;
    if (verdict.finding !== null) {
      // A tunnel is thousands of queries: one alert per parent domain and window, not per query.
      const key = `${verdict.finding.kind}|${verdict.tunnelBlocked}|${splitName(query.qname).parent}`;
      if (this.shouldAlert(key)) this.options.onAlert(flowId, facts, verdict.finding, verdict.tunnelBlocked);
    }
    if (decision.action === 'deny') {
      try {
        const refused = buildRefused(msg);
        listener.send(refused, client.port, client.address);
        datagrams?.push({ micros: nowMicros(), fromClient: false, bytes: refused });
      } catch {
        // an unparseable question section: no answer
      }
      l7.rcode = 'REFUSED';
      const capture = this.captured({ flowId, facts, decision, datagrams });
      this.options.onQuery({ flowId, facts, l7, decision, durationMs: 0, ...(capture !== undefined ? { capture } : {}) });
      return;
    }
    void this.forward(listener, client, msg, query, { flowId, facts, l7, decision }, datagrams).catch((err: unknown) => this.options.onError?.(err));
  }

  /** Hands a query's datagrams (when kept) to the captures; the id of its own capture. */
  private captured(flow: { flowId: string; facts: ConnectionFacts; decision: Decision; datagrams: CapturedDatagram[] | undefined }): string | undefined {
    if (flow.datagrams === undefined) return undefined;
    return this.options.onDatagrams?.({ flowId: flow.flowId, facts: flow.facts, decision: flow.decision, datagrams: flow.datagrams });
  }

  private async forward(listener: Socket, client: RemoteInfo, msg: Buffer, query: DnsMessage, rec: { flowId: string; facts: ConnectionFacts; l7: Record<string, unknown>; decision: Decision }, datagrams: CapturedDatagram[] | undefined): Promise<void> {
    if (this.pending.size >= MAX_IN_FLIGHT) {
      const oldest = this.pending.keys().next();
      if (!oldest.done) this.expire(oldest.value);
    }
    const upstream = await this.openUpstreamSocket();
    const id = randomInt(0x10000);
    const first = query.questions[0];
    const pending: Pending = {
      client,
      socket: listener,
      upstream,
      id,
      question: { name: query.qname, type: query.qtype, class: first?.class ?? 1 },
      originalId: query.id,
      ...rec,
      startedAt: performance.now(),
      timer: setTimeout(() => this.expire(upstream), this.options.timeoutMs ?? 5000),
      datagrams,
    };
    this.pending.set(upstream, pending);
    upstream.on('message', (answer, from) => {
      try {
        this.onAnswer(pending, answer, from);
      } catch (err) {
        this.options.onError?.(err);
      }
    });
    // The query goes upstream with our random ID; the answer gets the app's back.
    const out = Buffer.from(msg);
    out.writeUInt16BE(id, 0);
    upstream.send(out, 53, this.options.resolver);
  }

  private readonly alertedAt = new Map<string, number>();

  /**
   * A datagram to port 53 that is not DNS: another protocol riding the port every pod may use
   * (ptunnel-ng's own framing, iodine's raw mode after its DNS login). It is never forwarded;
   * it is an alert (once per client and 10 s, with the bytes as evidence) and, under
   * `tunnels: block` in protect mode, gets no answer at all. Returns whether it is blocked and,
   * when it raised an alert, the flow (and the record to write for a denied one).
   */
  private notDns(msg: Buffer, client: RemoteInfo, err: unknown): { blocked: boolean; flow?: { flowId: string; facts: ConnectionFacts; decision?: Decision }; record?: DnsQueryOutcome } {
    const mode = this.options.tunnelMode('protocol-mismatch', 'dns', 53);
    if (mode === 'off') return { blocked: false };
    const policy = this.options.policy();
    const denial = tunnelDenial(mode, 'protocol-mismatch', policy);
    const key = `not-dns|${client.address}|${denial !== null}`;
    if (this.shouldAlert(key)) {
      const facts = this.facts(client);
      const flowId = this.options.nextFlowId();
      const code = (err as { code?: string }).code ?? 'ERR_MALFORMED';
      const finding: TunnelFinding = {
        kind: 'protocol-mismatch',
        evidence: `a ${msg.length}-byte UDP datagram to port 53 that is not a DNS message (${code}): ${JSON.stringify(msg.subarray(0, 24).toString('latin1'))}`,
        confidence: msg.length < 12 ? 0.6 : 0.8,
        expected: 'dns',
        detected: 'unknown',
      };
      this.options.onAlert(flowId, facts, finding, denial !== null);
      if (denial === null) return { blocked: false, flow: { flowId, facts } };
      return { blocked: true, flow: { flowId, facts, decision: denial }, record: { flowId, facts, l7: { notDns: true }, decision: denial, durationMs: 0, reason: `not-dns:${code}` } };
    }
    return { blocked: denial !== null };
  }

  private shouldAlert(key: string): boolean {
    const now = Date.now();
    const last = this.alertedAt.get(key);
    if (last !== undefined && now - last < ALERT_INTERVAL_MS) return false;
    if (this.alertedAt.size >= 1024) this.alertedAt.clear(); // bounded; worst case a repeated alert
    this.alertedAt.set(key, now);
    return true;
  }

  private onAnswer(p: Pending, msg: Buffer, from: RemoteInfo): void {
    if (this.pending.get(p.upstream) !== p) return;
    // RFC 5452 §9.1: only from the address and port asked, with the ID and question sent.
    if (from.address !== this.options.resolver.split('%')[0] || from.port !== 53) return this.options.onRejectedAnswer?.('source');
    if (msg.length < 12 || msg.readUInt16BE(0) !== p.id) return this.options.onRejectedAnswer?.('id');
    let answer: DnsMessage;
    try {
      answer = parseDnsMessage(msg, 'server');
    } catch {
      return this.options.onRejectedAnswer?.('malformed');
    }
    const q = answer.questions[0];
    if (!answer.isResponse || answer.questions.length !== 1 || q === undefined || q.name !== p.question.name || q.typeName !== p.question.type || q.class !== p.question.class) {
      return this.options.onRejectedAnswer?.('question');
    }
    this.settle(p);
    const dnsCtx = { policy: this.options.policy, monitor: this.options.monitor, tunnelMode: this.options.tunnelMode };
    const alias = checkAnswer(dnsCtx, p.facts, answer, p.question.type);
    let decision = p.decision;
    const out = Buffer.from(msg);
    out.writeUInt16BE(p.originalId, 0);
    if (alias !== null) {
      p.l7.deniedAlias = alias.alias;
      decision = alias.decision;
    }
    let sent: Buffer = out;
    if (alias !== null && alias.decision.action === 'deny') {
      // The answer leads to a denied name: the app gets REFUSED, not the addresses.
      sent = buildRefused(out);
      p.l7.rcode = 'REFUSED';
    } else {
      p.l7.rcode = answer.rcodeName;
    }
    p.socket.send(sent, p.client.port, p.client.address);
    p.datagrams?.push({ micros: nowMicros(), fromClient: false, bytes: sent });
    p.l7.answers = answer.answerCount;
    const finding = answerFinding(dnsCtx, p.facts, answer);
    if (finding !== null) this.options.onAlert(p.flowId, p.facts, finding, false);
    const capture = this.captured({ flowId: p.flowId, facts: p.facts, decision, datagrams: p.datagrams });
    this.options.onQuery({ flowId: p.flowId, facts: p.facts, l7: p.l7, decision, durationMs: performance.now() - p.startedAt, ...(capture !== undefined ? { capture } : {}) });
  }

  /** The query is answered or given up: its socket goes. */
  private settle(p: Pending): void {
    this.pending.delete(p.upstream);
    clearTimeout(p.timer);
    p.upstream.close();
  }

  private expire(upstream: Socket): void {
    const p = this.pending.get(upstream);
    if (p === undefined) return;
    this.settle(p);
    const capture = this.captured({ flowId: p.flowId, facts: p.facts, decision: p.decision, datagrams: p.datagrams });
    this.options.onQuery({ flowId: p.flowId, facts: p.facts, l7: p.l7, decision: p.decision, durationMs: performance.now() - p.startedAt, reason: 'timeout', ...(capture !== undefined ? { capture } : {}) });
  }

  close(): void {
    for (const upstream of [...this.pending.keys()]) this.expire(upstream);
    for (const s of this.listeners) s.close();
  }
}
