// The flow pipeline: the one place records are stamped (seq, time, pod) and fanned out to the
// exporters. emit() runs on the traffic path, so it only stamps, counts and enqueues: JSON
// serialisation and all I/O happen later, in batches, in the exporters.
import type pino from 'pino';
import { FlowClock } from './clock.js';
import type { FlowEntry, FlowSink } from './entry.js';
import { StdoutExporter, type StdoutExporterOptions } from './stdout-exporter.js';
import { ObserveHub } from './observe-hub.js';
import { OtlpExporter, type OtlpExporterOptions } from './otlp-exporter.js';
import type { FlowRecord, FlowRecordDraft, PodRef } from './types.js';
import { metrics } from '../metrics/index.js';

export interface FlowPipelineOptions {
  pod: PodRef;
  /** JSON lines to stdout (true), to another descriptor or file, or not at all (false). */
  stdout: boolean | StdoutExporterOptions;
  /** OTLP/gRPC logs to an OpenTelemetry Collector. An invalid endpoint throws InvalidOtlpEndpointError here. */
  otlp?: OtlpExporterOptions;
  /** Size of the ring of recent records served to `sidewall observe`; default 4096, 0 = no stream. */
  ringSize?: number;
  /**
   * The hub the admin flow stream serves. Default: the process-wide hub behind
   * handleObserveStream(), so the sidecar needs no extra wiring.
   */
  hub?: ObserveHub;
  /** Period of the interim `connection` records of long connections (trackConnection); default 60 s, 0 = off. */
  interimIntervalMs?: number;
  /** How long close() may take to flush, in ms; default 2000. */
  closeTimeoutMs?: number;
  /** The sidecar's own log (stderr); exporter trouble is reported there. */
  logger?: pino.Logger;
  /** Extra exporters (tests, future sinks). */
  sinks?: FlowSink[];
}

export interface TrackedConnection {
  /** Stop the periodic records (call before emitting the final record). */
  stop(): void;
}

export interface FlowPipeline {
  /** Synchronous, never throws, never blocks; assigns seq and time. Returns the seq assigned (0 if the pipeline is closed). */
  emit(draft: FlowRecordDraft): number;
  /**
   * Registers an open connection for periodic `connection` records: every interimIntervalMs the
   * pipeline calls snapshot() and emits the draft with interim: true. One timer for all connections.
   */
  trackConnection(flowId: string, snapshot: () => FlowRecordDraft): TrackedConnection;
  /** The last seq assigned. */
  readonly lastSeq: number;
  /** Flush what can be flushed within the deadline (closeTimeoutMs). */
  close(): Promise<void>;
}

let processHub: ObserveHub | null = null;

/** The hub served by handleObserveStream(): the one of the last pipeline created without `hub`. */
export function defaultObserveHub(): ObserveHub | null {
  return processHub;
}

class Pipeline implements FlowPipeline {
  private seq = 0;
  private closed = false;
  private readonly clock = new FlowClock();
  private readonly sinks: FlowSink[];
  private readonly tracked = new Map<string, () => FlowRecordDraft>();
  /** Bytes already counted in metrics for connections that had interim records. */
  private readonly countedBytes = new Map<string, { sent: number; received: number }>();
  private interimTimer: NodeJS.Timeout | null = null;
  private readonly interimTickBound = (): void => this.interimTick();

  constructor(private readonly options: FlowPipelineOptions) {
    this.sinks = [];
    if (options.stdout !== false) {
      this.sinks.push(new StdoutExporter(options.stdout === true ? {} : options.stdout));
    }
    if (options.otlp !== undefined) this.sinks.push(new OtlpExporter(options.otlp, options.pod, options.logger));
    const ringSize = options.ringSize ?? 4096;
    if (options.hub !== undefined) {
      this.sinks.push(options.hub);
    } else if (ringSize > 0) {
      processHub = new ObserveHub(ringSize);
      this.sinks.push(processHub);
    }
    for (const sink of options.sinks ?? []) this.sinks.push(sink);
  }

  get lastSeq(): number {
    return this.seq;
  }

  emit(draft: FlowRecordDraft): number {
    if (this.closed) return 0;
    try {
      const epochNs = this.clock.nowNs();
      const seq = ++this.seq;
      // time, seq and type lead each JSON line (easier to read and to grep); the draft's fields follow.
      const record: FlowRecord = Object.assign({ time: this.clock.format(epochNs), seq, type: draft.type }, draft, { pod: this.options.pod });
      const entry: FlowEntry = { record, epochNs, json: undefined };
      this.count(record);
      for (const sink of this.sinks) {
        try {
          sink.offer(entry);
        } catch (err) {
          metrics.flowEmitErrors.inc();
          this.options.logger?.error({ err, exporter: sink.name }, 'flow exporter failed to queue a record');
        }
      }
      return seq;
    } catch (err) {
      metrics.flowEmitErrors.inc();
      this.options.logger?.error({ err }, 'failed to emit a flow record');
      return 0;
    }
  }

  /**
   * Metrics derived from records, so the proxy does not count twice: connections (final records),
   * requests, denials (final connection and request records), tunnels (alert records), bytes.
   */
  private count(record: FlowRecord): void {
    metrics.flowRecords.inc({ type: record.type });
    const final = record.interim !== true;
    if (record.type === 'connection') {
      if (final) metrics.connections.inc({ direction: record.direction, protocol: record.protocol, verdict: record.verdict });
      if (record.bytes !== undefined) this.countBytes(record, final);
    } else if (record.type === 'request') {
      metrics.requests.inc({ direction: record.direction, protocol: record.protocol, verdict: record.verdict });
    } else if (record.tunnel !== undefined) {
      metrics.tunnels.inc({ kind: record.tunnel.kind, blocked: record.tunnel.blocked === true ? 'true' : 'false' });
    }
    if (record.verdict !== 'allowed' && final && record.type !== 'alert') {
      metrics.denials.inc({ rule: record.ruleId ?? 'default', verdict: record.verdict });
    }
  }

  private countBytes(record: FlowRecord, final: boolean): void {
    const bytes = record.bytes;
    if (bytes === undefined) return;
    const before = this.countedBytes.get(record.flowId);
    const sent = bytes.sent - (before?.sent ?? 0);
    const received = bytes.received - (before?.received ?? 0);
    if (sent > 0) metrics.bytes.inc({ direction: record.direction, dir: 'sent' }, sent);
    if (received > 0) metrics.bytes.inc({ direction: record.direction, dir: 'received' }, received);
    if (final) {
      if (before !== undefined) this.countedBytes.delete(record.flowId);
    } else {
      this.countedBytes.set(record.flowId, { sent: bytes.sent, received: bytes.received });
    }
  }

  trackConnection(flowId: string, snapshot: () => FlowRecordDraft): TrackedConnection {
    const interval = this.options.interimIntervalMs ?? 60_000;
    if (interval <= 0 || this.closed) return { stop: () => undefined };
    this.tracked.set(flowId, snapshot);
    if (this.interimTimer === null) {
      this.interimTimer = setInterval(this.interimTickBound, interval);
      this.interimTimer.unref();
    }
    return {
      stop: () => {
        if (this.tracked.get(flowId) === snapshot) this.tracked.delete(flowId);
      },
    };
  }

  private interimTick(): void {
    for (const [flowId, snapshot] of this.tracked) {
      try {
        this.emit({ ...snapshot(), type: 'connection', interim: true });
      } catch (err) {
        // A snapshot that throws belongs to a connection in a broken state: stop asking it.
        this.tracked.delete(flowId);
        this.options.logger?.warn({ err, flowId }, 'connection snapshot failed; periodic records stopped');
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.interimTimer !== null) clearInterval(this.interimTimer);
    this.tracked.clear();
    const deadline = Date.now() + (this.options.closeTimeoutMs ?? 2000);
    await Promise.all(this.sinks.map((sink) => sink.close(deadline).catch(() => undefined)));
  }
}

export function createFlowPipeline(options: FlowPipelineOptions): FlowPipeline {
  return new Pipeline(options);
}
