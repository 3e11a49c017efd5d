// The non-TCP guard: decides the first packet of every new flow that is not TCP (UDP other than the
// DNS the listener already takes, ICMP/ICMPv6, every other IP protocol), in and out of the pod and
// between its own containers, with the same compiled rules as TCP (CompiledPolicy.decideDatagram).
//
// Data flow: NFQUEUE (net/packet-queue.ts) → decode (protocols/ip/ip-packet.ts) → facts → policy →
// verdict (accept with the seal mark, so conntrack passes the rest of the flow; or drop) → record.
// The netfilter side is iptables/seal-rules.ts.
//
// Records: an accepted flow is queued once (its conntrack mark passes the rest), so it gets one
// `connection` record, written when its first packet is decided. A denied first packet leaves no
// conntrack entry, so every retry is queued again: denials are recorded once per flow (direction,
// protocol, addresses, ports or ICMP type) per interval, at most `maxDeniedRecords` per interval;
// the rest are counted (sidewall_non_tcp_records_suppressed_total) so a peer cannot make us write
// a record per packet.
//
// ICMP echo: every echo request and reply of an accepted flow comes back to the queue marked
// ECHO_MARK (seal-rules.ts) and goes to the ICMP tunnel monitor (tunnels/icmp-tunnel.ts); the
// flow keeps its one record. A finding is an `alert` record (once per pair of hosts while it
// stays flagged); under `tunnels: block` in protect mode the pair's echo messages are dropped.
import type { TunnelMode } from '../config/index.js';
import { tunnelDenial } from '../enforcement/tunnel-verdict.js';
import type { FlowRecordDraft } from '../flows/index.js';
import { metrics } from '../metrics/index.js';
import { HOOK_LOCAL_IN, HOOK_LOCAL_OUT, PacketQueue, flushConntrackMarked, type QueuedPacket } from '../net/packet-queue.js';
import type { CompiledPolicy, DatagramFacts, Decision, Direction, Endpoint, Workload } from '../policy/index.js';
import { decodeIpPacket } from '../protocols/ip/ip-packet.js';
import { ECHO_MARK, SEAL_MARK } from '../iptables/seal-rules.js';
import type { EchoMessage, IcmpTunnelMonitor } from '../tunnels/icmp-tunnel.js';
import { echoOf } from './icmp-echo.js';
import { alertRecord } from './records.js';
import type { FirstPacket } from '../capture/store.js';

export interface NonTcpGuardOptions {
  queue: number;
  maxLen: number;
  policy: () => CompiledPolicy;
  isLocal: (ip: string) => boolean;
  identify: (ip: string) => Workload | undefined;
  /** A destination with its Service when it is a cluster IP (issue 20); else `identify` alone. */
  describe?: (ip: string, port: number, withService: boolean) => Endpoint;
  nextFlowId: () => string;
  emit: (draft: FlowRecordDraft) => void;
  log: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void; info(obj: object, msg: string): void };
  /** Denial aggregation window. */
  intervalMs?: number;
  /** Denial records per window at most. */
  maxDeniedRecords?: number;
  /** ICMP echo tunnel detection, or null/absent when `tunnels: off`. */
  icmpTunnels?: IcmpTunnelMonitor | null;
  /** What to do with an `icmp-tunnel` finding (`tunnels:` in the config); default alert. */
  tunnelMode?: (kind: string) => TunnelMode;
  /** Clock for the tunnel monitor's windows (tests pass their own). */
  now?: () => number;
  /** True while a packet capture could want a flow's first packet (src/capture/store.ts firstPacket). */
  wantsPackets?: () => boolean;
  /** A recorded flow's first packet (a view, valid during the call): its own capture's id, if any. */
  capture?: (packet: FirstPacket) => string | undefined;
}

export interface NonTcpGuardStatus {
  bound: boolean;
  queue: number;
  /** Why the queue is not bound (the pod's non-TCP traffic is then dropped by the kernel). */
  reason?: string;
}

/** IPv4 header (60 with options) + IPv6 extension headers + the L4 ports or ICMP type: 512 covers long chains. */
const COPY_RANGE = 512;

export class NonTcpGuard {
  private queue: PacketQueue | undefined;
  private failure: string | undefined;
  private readonly denied = new Map<string, number>();
  private suppressed = 0;
  private readonly timer: NodeJS.Timeout;
  private lastStats = { lost: 0, truncated: 0 };
  private readonly intervalMs: number;
  private readonly maxDenied: number;

  constructor(private readonly options: NonTcpGuardOptions) {
    this.intervalMs = options.intervalMs ?? 10_000;
    this.maxDenied = options.maxDeniedRecords ?? 1024;
    this.timer = setInterval(() => this.rollInterval(), this.intervalMs).unref();
  }

  /** Binds the queue; on failure the guard stays unbound and says why (status()). */
  start(): NonTcpGuardStatus {
    try {
      this.queue = new PacketQueue({ queue: this.options.queue, maxLen: this.options.maxLen, copyRange: COPY_RANGE }, (p) => this.onPacket(p));
      this.failure = undefined;
      metrics.nonTcpGuardBound.set(1);
    } catch (err) {
      this.failure = `NFQUEUE ${this.options.queue} not bound: ${(err as Error).message}; the pod's non-TCP traffic is dropped until it is`;
      metrics.nonTcpGuardBound.set(0);
    }
    return this.status();
  }

  status(): NonTcpGuardStatus {
    return { bound: this.queue !== undefined, queue: this.options.queue, ...(this.failure !== undefined ? { reason: this.failure } : {}) };
  }

  /**
   * New rules: flows accepted under the old ones lose their conntrack entry (those carrying our
   * mark, nothing else), so their next packet is queued and decided by the new rules.
   */
  onPolicyChange(): void {
    if (this.queue === undefined) return;
    for (const family of [4, 6] as const) {
      const err = flushConntrackMarked(family, SEAL_MARK, SEAL_MARK);
      if (err !== 0) this.options.log.warn({ family, errno: err }, 'could not delete the conntrack entries of accepted non-TCP flows; they keep their verdict until they time out');
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.queue?.close();
    this.queue = undefined;
    metrics.nonTcpGuardBound.set(0);
  }

  private onPacket(p: QueuedPacket): void {
    const queue = this.queue;
    if (queue === undefined) return;
    let accept = false;
    try {
      accept = this.decide(p);
    } catch (err) {
      // A bug must not open the pod: the packet is dropped.
      this.options.log.error({ err }, 'non-TCP guard failed on a packet; dropped');
      metrics.nonTcpErrors.inc({ kind: 'internal' });
    }
    // ECHO_MARK only told us the flow was accepted; it goes no further.
    const sent = accept ? queue.accept(p.id, (p.mark & ~ECHO_MARK) | SEAL_MARK) : queue.drop(p.id);
    if (!sent) metrics.nonTcpErrors.inc({ kind: 'verdict' });
  }

  /** Returns whether to accept; records and counts the decision. */
  private decide(p: QueuedPacket): boolean {
    const policy = this.options.policy();
    const packet = decodeIpPacket(p.data);
    const direction: Direction = p.hook === HOOK_LOCAL_OUT ? 'egress' : 'ingress';
    if (!packet.ok) {
      // Cannot be decided: denied (monitor and learn let it pass, recorded as would-deny).
      metrics.nonTcpErrors.inc({ kind: 'malformed' });
      const enforce = policy.mode === 'protect';
      metrics.nonTcpPackets.inc({ protocol: 'ip', direction, verdict: enforce ? 'denied' : 'would-deny' });
      this.options.log.warn({ code: packet.code, detail: packet.detail, hook: p.hook }, 'undecodable packet queued by the non-TCP guard');
      return !enforce;
    }
    let flowDirection: Direction = direction;
    if (p.hook === HOOK_LOCAL_OUT && this.options.isLocal(packet.dst)) flowDirection = 'intra';
    else if (p.hook === HOOK_LOCAL_IN && this.options.isLocal(packet.src)) flowDirection = 'intra';
    const src = this.endpoint(packet.src, packet.srcPort);
    // A UDP Service's cluster IP is that Service's endpoints, as for connections (gate.ts).
    const dst = flowDirection !== 'ingress' && this.options.describe !== undefined ? this.options.describe(packet.dst, packet.dstPort, true) : this.endpoint(packet.dst, packet.dstPort);
    const facts: DatagramFacts = { direction: flowDirection, src, dst, protocol: packet.name };
    const echo = echoOf(packet, p.data);
    if (echo !== null && (p.mark & ECHO_MARK) !== 0) {
      // An echo message of a flow conntrack accepted (our rule set the bit; a forged one is
      // cleared before): recorded when its first packet was, so only the tunnel check is left.
      const tunnel = this.inspectEcho(echo, facts, policy);
      metrics.nonTcpPackets.inc({ protocol: packet.name, direction: flowDirection, verdict: tunnel === null ? 'allowed' : 'denied' });
      return tunnel === null;
    }
    let decision = policy.decideDatagram(facts);
    if (decision.action === 'allow' && echo !== null) decision = this.inspectEcho(echo, facts, policy) ?? decision;
    metrics.nonTcpPackets.inc({ protocol: packet.name, direction: flowDirection, verdict: decision.verdict });
    const l7 = packet.icmpType >= 0 ? { icmp: { type: packet.icmpType, code: packet.icmpCode } } : undefined;
    if (decision.action === 'allow' || this.firstDenialThisInterval(flowDirection, packet.name, src, dst, packet.icmpType)) {
      const flowId = this.options.nextFlowId();
      // Only flows that are recorded are captured: a denied flow's retries are neither.
      const capture = this.options.wantsPackets?.() === true ? this.options.capture?.({ flowId, client: src, server: dst, decision, ip: p.data, length: packet.length }) : undefined;
      this.options.emit(this.record(flowId, facts, decision, packet.length, l7, p.uid, capture));
    }
    return decision.action === 'allow';
  }

  /** The ICMP tunnel monitor's word on an allowed echo message: a denial under block, else null (alerts emitted here). */
  private inspectEcho(echo: EchoMessage, facts: DatagramFacts, policy: CompiledPolicy): Decision | null {
    const monitor = this.options.icmpTunnels;
    if (monitor === undefined || monitor === null) return null;
    const mode = this.options.tunnelMode?.('icmp-tunnel') ?? 'alert';
    if (mode === 'off') return null;
    const verdict = monitor.onEcho(echo, (this.options.now ?? Date.now)());
    const denial = verdict.flagged ? tunnelDenial(mode, 'icmp-tunnel', policy) : null;
    if (verdict.finding !== null) {
      this.options.emit(alertRecord(this.options.nextFlowId(), facts, facts.protocol, verdict.finding, denial !== null, policy.hash));
    }
    return denial;
  }

  private endpoint(ip: string, port: number): Endpoint {
    const workload = this.options.identify(ip);
    return workload === undefined ? { ip, port } : { ip, port, workload };
  }

  private firstDenialThisInterval(direction: Direction, protocol: string, src: Endpoint, dst: Endpoint, icmpType: number): boolean {
    const key = `${direction}|${protocol}|${src.ip}|${src.port}|${dst.ip}|${dst.port}|${icmpType}`;
    const seen = this.denied.get(key);
    if (seen !== undefined) {
      this.denied.set(key, seen + 1);
      this.suppress();
      return false;
    }
    if (this.denied.size >= this.maxDenied) {
      this.suppress();
      return false;
    }
    this.denied.set(key, 1);
    return true;
  }

  private suppress(): void {
    this.suppressed++;
    metrics.nonTcpSuppressed.inc({});
  }

  private rollInterval(): void {
    if (this.suppressed > 0) {
      this.options.log.warn({ suppressed: this.suppressed, flows: this.denied.size, intervalMs: this.intervalMs }, 'denied non-TCP packets beyond the first of each flow were counted, not recorded');
    }
    this.denied.clear();
    this.suppressed = 0;
    const stats = this.queue?.stats();
    if (stats !== undefined) {
      if (stats.lost > this.lastStats.lost) metrics.nonTcpErrors.inc({ kind: 'lost' }, stats.lost - this.lastStats.lost);
      if (stats.truncated > this.lastStats.truncated) metrics.nonTcpErrors.inc({ kind: 'batch-full' }, stats.truncated - this.lastStats.truncated);
      this.lastStats = stats;
    }
  }

  private record(flowId: string, facts: DatagramFacts, decision: Decision, length: number, l7: Record<string, unknown> | undefined, uid: number, capture: string | undefined): FlowRecordDraft {
    return {
      type: 'connection',
      flowId,
      direction: facts.direction,
      src: facts.src,
      dst: facts.dst,
      protocol: facts.protocol,
      ...(l7 !== undefined ? { l7 } : {}),
      verdict: decision.verdict,
      ruleId: decision.ruleId,
      policy: decision.policy,
      // The first packet only: conntrack carries the rest of an accepted flow without us.
      bytes: { sent: length, received: 0 },
      durationMs: 0,
      reason: decision.action === 'allow' ? 'first-packet' : 'denied',
      ...(uid >= 0 ? { uid } : {}),
      ...(capture !== undefined ? { capture } : {}),
    };
  }
}
