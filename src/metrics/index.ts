// The sidecar's Prometheus metrics (text exposition format 0.0.4, served at /metrics on the admin
// port). One registry for the whole process; every module increments the named metrics below
// rather than creating its own, so names and labels stay consistent.
import { createRequire } from 'node:module';
import type { Counter as CounterType, Gauge as GaugeType, LabelValues, Registry as RegistryType } from 'prom-client';
import { spliceStats } from '../net/relay-splice.js';

// prom-client's own modules, not its index: the index also loads its Pushgateway and cluster
// aggregator, and with them node:https, tls, zlib and cluster (≈1.5 MiB of RSS the sidecar
// never uses: issue 18).
const requireHere = createRequire(import.meta.url);
export const Counter = requireHere('prom-client/lib/counter') as typeof CounterType;
export const Gauge = requireHere('prom-client/lib/gauge') as typeof GaugeType;
const Registry = requireHere('prom-client/lib/registry') as typeof RegistryType;
type Counter<L extends string> = CounterType<L>;
type Gauge<L extends string> = GaugeType<L>;

export const registry = new Registry();

// Process metrics from prom-client, among them nodejs_eventloop_lag_seconds (and its percentiles),
// which is the metric to watch for "export must never slow the traffic path". Registered by the
// first scrape, not at start: their event-loop histogram (360 KB), GC observer and a dozen
// metric objects are memory and work a sidecar nobody scrapes never needs. The first scrape's
// lag and GC figures cover the moment since then; every later scrape, the whole interval.
let defaultMetrics = false;
function registerDefaultMetrics(): void {
  if (defaultMetrics) return;
  defaultMetrics = true;
  const collectDefaultMetrics = requireHere('prom-client/lib/defaultMetrics') as typeof import('prom-client').collectDefaultMetrics;
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 20 });
}

type ExporterName = 'stdout' | 'otlp' | 'observe';

// Hot paths (a record dropped per emit while an exporter is stuck) keep plain number tallies and
// register a hook that moves them into prom-client when /metrics is scraped: a labelled inc()
// costs about a microsecond, which would make emit() slowest exactly when the sidecar is overloaded.
const collectHooks = new Set<() => void>();

/** Registers a hook run before the export metrics are collected; returns its removal. */
export function addCollectHook(hook: () => void): () => void {
  collectHooks.add(hook);
  return () => {
    collectHooks.delete(hook);
  };
}

function runCollectHooks(): void {
  for (const hook of collectHooks) hook();
}

/**
 * A labelled counter (or gauge) for the traffic path: inc() adds to a plain number keyed by the
 * label values, and the sums move into prom-client when the metric is collected — a labelled
 * prom-client inc() hashes its labels every time, about a microsecond per record.
 */
export class Tally<L extends string> {
  readonly metric: Counter<L> | Gauge<L>;
  /** Every entry, for flush; found by label values through `tree` (no key string built per inc). */
  private readonly entries: Array<{ labels: LabelValues<L>; n: number }> = [];
  /** One Map level per label name, keyed by the label's value; the last level holds the entry. */
  private readonly tree = new Map<unknown, unknown>();

  constructor(kind: 'counter' | 'gauge', name: string, help: string, private readonly labelNames: readonly L[]) {
    const flush = (): void => this.flush();
    const options = { name, help, labelNames, registers: [registry], collect: flush };
    this.metric = kind === 'counter' ? new Counter<L>(options) : new Gauge<L>(options);
  }

  inc(labels: LabelValues<L>, by = 1): void {
    // Per label a Map lookup by its value (a string or number the caller already has): the
    // string key this used to build (values joined) cost an allocation per record.
    let level = this.tree;
    const names = this.labelNames;
    const lastIndex = names.length - 1;
    for (let i = 0; i < lastIndex; i++) {
      const value = labels[names[i] as L];
      let next = level.get(value) as Map<unknown, unknown> | undefined;
      if (next === undefined) level.set(value, (next = new Map()));
      level = next;
    }
    const lastValue = lastIndex >= 0 ? labels[names[lastIndex] as L] : undefined;
    const entry = level.get(lastValue) as { labels: LabelValues<L>; n: number } | undefined;
    if (entry !== undefined) {
      entry.n += by;
      return;
    }
    const created = { labels: { ...labels }, n: by };
    level.set(lastValue, created);
    this.entries.push(created);
  }

  dec(labels: LabelValues<L>, by = 1): void {
    this.inc(labels, -by);
  }

  private flush(): void {
    for (const entry of this.entries) {
      if (entry.n !== 0) {
        (this.metric as Gauge<L>).inc(entry.labels, entry.n);
        entry.n = 0;
      }
    }
  }
}

function counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> {
  return new Counter<L>({ name, help, labelNames, registers: [registry] });
}

/**
 * The kernel relay (src/net/relay-splice.ts): connections moved to splice(2) once nothing needed
 * their bytes, refused by the addon (they stayed in the JS relay), handed back for want of a pipe
 * (fallback), or taken back by a capture joining them (stopped). Read from plain tallies at scrape.
 */
new Counter({
  name: 'sidewall_kernel_relay_total',
  help: 'Connections moved to the kernel relay (splice) and what became of them: outcome=started, refused (stayed in the JS relay), fallback (no pipe: back to the JS relay), stopped (taken back, e.g. by a capture)',
  labelNames: ['outcome'] as const,
  registers: [registry],
  collect(this: Counter<'outcome'>) {
    this.reset();
    for (const [outcome, n] of Object.entries(spliceStats)) this.inc({ outcome }, n);
  },
});

export const metrics = {
  /** Closed connections. Updated by the flow pipeline from final `connection` records. */
  connections: new Tally('counter', 'sidewall_connections_total', 'Connections closed, by direction, protocol and verdict', ['direction', 'protocol', 'verdict'] as const),
  /** L7 requests. Updated by the flow pipeline from `request` records. */
  requests: new Tally('counter', 'sidewall_requests_total', 'L7 requests, by direction, protocol and verdict', ['direction', 'protocol', 'verdict'] as const),
  /** Denials (and would-be denials in monitor mode) by rule id; rule="default" for the default action. */
  denials: new Tally('counter', 'sidewall_denials_total', 'Denied or would-deny connections and requests, by rule id', ['rule', 'verdict'] as const),
  /** Bytes through the proxy; dir=sent: from src (the side that opened the connection) to dst, dir=received: back. Updated by the flow pipeline from connection records. */
  bytes: new Tally('counter', 'sidewall_bytes_total', 'Bytes proxied, by connection direction and dir (sent|received)', ['direction', 'dir'] as const),
  /** Accepted connections (refused ones included), by direction: each ends in exactly one final `connection` record. */
  connectionsAccepted: new Tally('counter', 'sidewall_connections_accepted_total', 'Connections accepted (refused ones included), by direction; equals the final connection records once they are closed', ['direction'] as const),
  /** Connections refused or ended to stay within the memory limit, or for holding a head too long/slowly. */
  connectionsShed: counter('sidewall_connections_shed_total', 'Connections refused or closed to stay within limits, by reason (head-timeout, held-bytes, write-queue, overload: refused under memory pressure, limit: refused at maxConnections)', ['reason'] as const),
  /** Limits derived at start from the memory limit (README: Robustness). */
  limits: new Gauge<'limit'>({ name: 'sidewall_limit', help: 'Limits in force, by name (memory_limit_bytes, max_connections, read_buffer_bytes, held_bytes_total, write_queue_total)', labelNames: ['limit'] as const, registers: [registry] }),
  /** Open connections, maintained by the proxy (inc on accept, dec on close). */
  activeConnections: new Tally('gauge', 'sidewall_active_connections', 'Connections currently open, by direction', ['direction'] as const),
  /** Tunnel detections by kind. Updated by the flow pipeline from records that carry `tunnel`. */
  tunnels: new Tally('counter', 'sidewall_tunnel_detections_total', 'Tunnel detections, by kind and whether they blocked', ['kind', 'blocked'] as const),
  /** Non-TCP packets queued to the guard (the first of each flow, and each retry of a denied one), by outcome. */
  nonTcpPackets: new Tally('counter', 'sidewall_non_tcp_packets_total', 'Non-TCP packets decided by the guard (first packet of each flow, retries of denied ones), by protocol, direction and verdict', ['protocol', 'direction', 'verdict'] as const),
  /** Denied non-TCP packets counted but not recorded (repeats within the interval, or over the per-interval cap). */
  nonTcpSuppressed: new Tally('counter', 'sidewall_non_tcp_records_suppressed_total', 'Denied non-TCP packets counted without a record of their own (repeats of a flow within the interval, or beyond the cap)', [] as const),
  /** Guard problems: malformed (undecodable, denied), verdict (could not be sent), lost (netlink overflow), batch-full, internal. */
  nonTcpErrors: new Tally('counter', 'sidewall_non_tcp_errors_total', 'Non-TCP guard problems, by kind (malformed, verdict, lost, batch-full, internal)', ['kind'] as const),
  /** 1 while the NFQUEUE is bound; 0: the kernel drops the pod's non-TCP traffic. */
  nonTcpGuardBound: new Gauge({ name: 'sidewall_non_tcp_guard_bound', help: '1 while the non-TCP guard holds its NFQUEUE (0: the pod\'s non-TCP traffic is dropped)', registers: [registry] }),
  /** Rule (re)loads: result="success" | "failure". Updated by the policy loader. */
  policyReloads: counter('sidewall_policy_reloads_total', 'Rule loads and reloads, by result (success|failure)', ['result'] as const),
  /** Parser errors by protocol and the error's stable code. Updated by the parsers/proxy. */
  parserErrors: counter('sidewall_parser_errors_total', 'L7 parser errors, by protocol and error code', ['protocol', 'code'] as const),
  /** DLP hits by sensor, where and outcome (alert | block | would-block); never a value. */
  dlpHits: counter('sidewall_dlp_hits_total', 'DLP sensor hits, by sensor, where (request-body, response-body, header, query) and outcome (alert, blocked, would-block)', ['sensor', 'where', 'outcome'] as const),
  dnsAnswersRejected: counter('sidewall_dns_answers_rejected_total', 'Upstream DNS answers dropped by the RFC 5452 checks (source, id, question, malformed)', ['reason'] as const),
  /** Records emitted into the flow pipeline, by type. */
  flowRecords: new Tally('counter', 'sidewall_flow_records_total', 'Flow records emitted, by type', ['type'] as const),
  /** Records waiting in an exporter's bounded queue. */
  exportQueueDepth: new Gauge<'exporter'>({ name: 'sidewall_flow_export_queue_depth', help: 'Records waiting in an exporter queue', labelNames: ['exporter'] as const, registers: [registry], collect: runCollectHooks }),
  /** Records an exporter handed on successfully (written to stdout, acknowledged by the collector, sent to an observer). */
  exportSent: counter<'exporter'>('sidewall_flow_export_sent_total', 'Records exported, by exporter', ['exporter'] as const),
  /** Records an exporter lost: reason="overflow" (queue full, oldest dropped), "rejected" (non-retryable error), "shutdown". */
  exportDropped: new Counter<'exporter' | 'reason'>({ name: 'sidewall_flow_export_dropped_total', help: 'Records dropped by an exporter, by reason', labelNames: ['exporter', 'reason'] as const, registers: [registry], collect: runCollectHooks }),
  /** Export attempts retried after a retryable failure. */
  exportRetries: counter<'exporter'>('sidewall_flow_export_retries_total', 'Export batches retried', ['exporter'] as const),
  /** Requests for the admin port's private endpoints, by endpoint and caller (own-user | token | denied). */
  adminRequests: counter('sidewall_admin_private_requests_total', "Requests for the admin port's private endpoints (flow stream, /connections, /learn/model), by endpoint and result (own-user, token, denied)", ['endpoint', 'result'] as const),
  /** Captures started, by trigger (alert, rule, on-demand). */
  capturesStarted: counter('sidewall_captures_started_total', 'Packet captures started, by trigger (alert, rule, on-demand)', ['trigger'] as const),
  /** Captures deleted (oldest first) to stay within capture.maxBytes, or refused (too many active). */
  capturesDropped: counter('sidewall_captures_dropped_total', 'Stored captures deleted to stay within capture.maxBytes (reason=max-bytes, max-count), or not started (reason=too-many-active)', ['reason'] as const),
  /** Frames not written: the capture volume's budget was full of active captures. */
  capturePacketsDropped: counter('sidewall_capture_packets_dropped_total', 'Captured frames not written because capture.maxBytes was full of active captures', [] as const),
  /** Bytes of pcapng written, and held on the capture volume now. */
  captureBytesWritten: counter('sidewall_capture_bytes_written_total', 'Bytes of pcapng written to the capture volume', [] as const),
  captureBytesStored: new Gauge({ name: 'sidewall_capture_stored_bytes', help: 'Bytes of captures held on the capture volume', registers: [registry] }),
  /** Connections whose capture pre-buffer was cut short (per-connection or all-connections budget). */
  capturePreBufferFull: counter('sidewall_capture_prebuffer_full_total', 'Connections whose capture pre-buffer filled up (a capture started later misses bytes after it)', [] as const),
  /** Records emitted through an exporter's queue when the exporter failed internally. */
  flowEmitErrors: counter('sidewall_flow_emit_errors_total', 'Internal errors while emitting a flow record (the record is dropped)', [] as const),
};

export type SidewallMetrics = typeof metrics;
export type { ExporterName };

/** Content-Type of metricsText(), for the /metrics response header. */
export const metricsContentType: string = registry.contentType;

/** The Prometheus text exposition of every sidewall metric. */
export function metricsText(): Promise<string> {
  registerDefaultMetrics();
  return registry.metrics();
}
