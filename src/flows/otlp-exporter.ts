// Flow records as OpenTelemetry logs over OTLP/gRPC (LogsService/Export of the official
// opentelemetry-proto definitions in proto/opentelemetry, see proto/README.md).
//
// Mapping (one LogRecord per flow record):
//   time_unix_nano          record time (nanoseconds, the same instant as `time`)
//   observed_time_unix_nano when the exporter built the batch
//   severity                INFO for allowed connections/requests, WARN for denied, would-deny and alerts
//   body                    string: the record's JSON, byte for byte the stdout line, so every
//                           exporter carries one schema (schema/flow-record.schema.json)
//   attributes              sidewall.flow.{seq,type,id,verdict,direction,protocol,rule_id} for
//                           collector-side routing and filtering without parsing the body
//   resource                service.name=sidewall, k8s.namespace.name, k8s.pod.name, + configured
//
// Delivery: records wait in a bounded queue (default 10,000; overflow drops the OLDEST and counts
// it). One Export call is in flight at a time, of up to maxBatchSize records (default 512), sent
// when that many are queued or batchDelayMs (default 1 s) after the first. A batch that fails with
// a retryable code (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, CANCELLED, ABORTED, ...) is retried with exponential backoff
// (200 ms doubling to 10 s, with jitter) for at most maxRetryMs (default 30 s); then it is dropped
// and counted. Other errors drop the batch at once (reason "rejected").
//
// Duplicates: at-least-once per batch. A retry follows only a failed attempt, and only an attempt
// that failed with DEADLINE_EXCEEDED, UNAVAILABLE or CANCELLED may have reached the collector (its answer was
// lost), so the collector can see each record of such a batch twice. `possibleDuplicates` counts
// those records; the `sidewall.flow.seq` attribute lets the collector drop them.
import { createRequire } from 'node:module';
import type * as Grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { BoundedQueue } from './bounded-queue.js';
import { entryJson, sleepUnref, type FlowEntry, type FlowSink } from './entry.js';
import { loadProto, protoMethod } from './proto-files.js';
import type { PodRef } from './types.js';
import { addCollectHook, metrics } from '../metrics/index.js';

export interface OtlpExporterOptions {
  /** host:port of the collector's OTLP/gRPC receiver, e.g. otel-collector.observability:4317; an https:// prefix selects TLS. */
  endpoint: string;
  /** Plaintext (true) or TLS (false). Default: TLS only for an https:// endpoint. */
  insecure?: boolean;
  queueSize?: number;
  maxBatchSize?: number;
  batchDelayMs?: number;
  /** Deadline of one Export call; default 10 s. */
  timeoutMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** How long one batch may be retried before it is dropped; default 30 s. */
  maxRetryMs?: number;
  /** Extra resource attributes (e.g. k8s.node.name). */
  resourceAttributes?: Record<string, string>;
  /** gRPC metadata sent with each export (e.g. an authorization header). */
  headers?: Record<string, string>;
}

export class InvalidOtlpEndpointError extends Error {
  readonly code = 'SW_OTLP_ENDPOINT_INVALID';
  constructor(readonly endpoint: string) {
    super(`invalid OTLP endpoint '${endpoint}': expected host:port or https://host:port`);
    this.name = 'InvalidOtlpEndpointError';
  }
}

// The OTLP specification's retryable codes (RESOURCE_EXHAUSTED included: a collector sheds load
// with it). CANCELLED is what a collector that shuts down mid-call produces.
// gRPC status codes (grpc/doc/statuscodes.md), spelled out so that grpc-js itself loads only when
// an exporter is created: a sidecar without OTLP export does not pay its memory.
const STATUS = { CANCELLED: 1, DEADLINE_EXCEEDED: 4, RESOURCE_EXHAUSTED: 8, ABORTED: 10, OUT_OF_RANGE: 11, UNAVAILABLE: 14, DATA_LOSS: 15 } as const;
const RETRYABLE = new Set<number>([
  STATUS.CANCELLED,
  STATUS.OUT_OF_RANGE,
  STATUS.DATA_LOSS,
  STATUS.UNAVAILABLE,
  STATUS.DEADLINE_EXCEEDED,
  STATUS.RESOURCE_EXHAUSTED,
  STATUS.ABORTED,
]);
/** Failures after which the collector may nevertheless have received the batch. */
const AMBIGUOUS = new Set<number>([STATUS.CANCELLED, STATUS.UNAVAILABLE, STATUS.DEADLINE_EXCEEDED]);

let grpcModule: typeof Grpc | null = null;
function grpcJs(): typeof Grpc {
  grpcModule ??= createRequire(import.meta.url)('@grpc/grpc-js') as typeof Grpc;
  return grpcModule;
}

const SEVERITY_INFO = 9;
const SEVERITY_WARN = 13;

interface AnyValue {
  stringValue?: string;
  intValue?: number;
  boolValue?: boolean;
}
interface KeyValue {
  key: string;
  value: AnyValue;
}

function stringAttribute(key: string, value: string): KeyValue {
  return { key, value: { stringValue: value } };
}

function parseEndpoint(endpoint: string): { address: string; tls: boolean } {
  let address = endpoint;
  let tls = false;
  if (address.startsWith('https://')) {
    tls = true;
    address = address.slice('https://'.length);
  } else if (address.startsWith('http://')) {
    address = address.slice('http://'.length);
  }
  address = address.replace(/\/+$/, '');
  if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(address)) throw new InvalidOtlpEndpointError(endpoint);
  return { address, tls };
}

interface OutstandingBatch {
  entries: FlowEntry[];
  firstAttemptAt: number;
  attempts: number;
}

export interface OtlpExporterStats {
  queued: number;
  sent: number;
  dropped: number;
  retries: number;
  possibleDuplicates: number;
}

export class OtlpExporter implements FlowSink {
  readonly name = 'otlp';
  private readonly queue: BoundedQueue<FlowEntry>;
  private readonly client: Grpc.Client;
  private readonly method = protoMethod(loadProto('opentelemetry/proto/collector/logs/v1/logs_service.proto'), 'opentelemetry.proto.collector.logs.v1.LogsService', 'Export');
  private readonly resource: { attributes: KeyValue[] };
  private readonly metadata: Grpc.Metadata;
  private readonly maxBatchSize: number;
  private readonly batchDelayMs: number;
  private readonly timeoutMs: number;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly maxRetryMs: number;
  private batch: OutstandingBatch | null = null;
  private inFlight = false;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly counts = { sent: 0, dropped: 0, retries: 0, possibleDuplicates: 0 };
  /** Overflow drops not yet added to the prom-client counter (see addCollectHook). */
  private uncountedOverflow = 0;
  private readonly removeCollectHook = addCollectHook(() => this.publishMetrics());
  private readonly sendBound = (): void => this.sendNext();
  private idleWaiters: (() => void)[] = [];

  constructor(options: OtlpExporterOptions, pod: PodRef, private readonly logger?: Logger) {
    const parsed = parseEndpoint(options.endpoint);
    const address = parsed.address;
    const tls = options.insecure === undefined ? parsed.tls : !options.insecure;
    this.queue = new BoundedQueue<FlowEntry>(options.queueSize ?? 10_000);
    this.maxBatchSize = Math.max(1, options.maxBatchSize ?? 512);
    this.batchDelayMs = options.batchDelayMs ?? 1000;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.initialBackoffMs = options.initialBackoffMs ?? 200;
    this.maxBackoffMs = options.maxBackoffMs ?? 10_000;
    this.maxRetryMs = options.maxRetryMs ?? 30_000;
    const grpc = grpcJs();
    this.client = new grpc.Client(address, tls ? grpc.credentials.createSsl() : grpc.credentials.createInsecure(), {
      // Reconnect quickly after a collector restart; our own backoff paces the retries.
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 2000,
    });
    const attributes: KeyValue[] = [
      stringAttribute('service.name', 'sidewall'),
      stringAttribute('k8s.namespace.name', pod.namespace),
      stringAttribute('k8s.pod.name', pod.name),
    ];
    for (const [key, value] of Object.entries(options.resourceAttributes ?? {})) attributes.push(stringAttribute(key, value));
    this.resource = { attributes };
    this.metadata = new grpc.Metadata();
    for (const [key, value] of Object.entries(options.headers ?? {})) this.metadata.set(key, value);
  }

  stats(): OtlpExporterStats {
    return { queued: this.queue.length + (this.batch?.entries.length ?? 0), ...this.counts };
  }

  offer(entry: FlowEntry): void {
    if (this.closed) {
      this.drop(1, 'shutdown');
      return;
    }
    if (this.queue.push(entry) !== undefined) {
      this.counts.dropped++;
      this.uncountedOverflow++;
    }
    if (this.batch === null && !this.inFlight) {
      if (this.queue.length >= this.maxBatchSize) this.arm(0);
      else if (this.timer === null) this.arm(this.batchDelayMs);
    }
  }

  private arm(delayMs: number): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(this.sendBound, delayMs);
    this.timer.unref();
  }

  private publishMetrics(): void {
    if (this.uncountedOverflow > 0) {
      metrics.exportDropped.inc({ exporter: 'otlp', reason: 'overflow' }, this.uncountedOverflow);
      this.uncountedOverflow = 0;
    }
    metrics.exportQueueDepth.set({ exporter: 'otlp' }, this.queue.length + (this.batch?.entries.length ?? 0));
  }

  private drop(count: number, reason: string): void {
    this.counts.dropped += count;
    metrics.exportDropped.inc({ exporter: 'otlp', reason }, count);
  }

  private sendNext(): void {
    this.timer = null;
    if (this.inFlight) return;
    if (this.batch === null) {
      if (this.queue.length === 0) return this.notifyIdle();
      const entries: FlowEntry[] = [];
      while (entries.length < this.maxBatchSize) {
        const entry = this.queue.shift();
        if (entry === undefined) break;
        entries.push(entry);
      }
      this.batch = { entries, firstAttemptAt: Date.now(), attempts: 0 };
    }
    metrics.exportQueueDepth.set({ exporter: 'otlp' }, this.queue.length + this.batch.entries.length);
    const batch = this.batch;
    batch.attempts++;
    this.inFlight = true;
    this.client.makeUnaryRequest(
      this.method.path,
      this.method.requestSerialize,
      this.method.responseDeserialize,
      this.buildRequest(batch.entries),
      this.metadata,
      { deadline: Date.now() + this.timeoutMs },
      (err: Grpc.ServiceError | null) => this.onExportDone(batch, err),
    );
  }

  private buildRequest(entries: FlowEntry[]): object {
    const observed = (BigInt(Date.now()) * 1_000_000n).toString();
    const logRecords = entries.map((entry) => {
      const record = entry.record;
      const warn = record.verdict !== 'allowed' || record.type === 'alert';
      const attributes: KeyValue[] = [
        { key: 'sidewall.flow.seq', value: { intValue: record.seq } },
        stringAttribute('sidewall.flow.type', record.type),
        stringAttribute('sidewall.flow.id', record.flowId),
        stringAttribute('sidewall.flow.verdict', record.verdict),
        stringAttribute('sidewall.flow.direction', record.direction),
        stringAttribute('sidewall.flow.protocol', record.protocol),
      ];
      if (record.ruleId !== null) attributes.push(stringAttribute('sidewall.flow.rule_id', record.ruleId));
      return {
        timeUnixNano: entry.epochNs.toString(),
        observedTimeUnixNano: observed,
        severityNumber: warn ? SEVERITY_WARN : SEVERITY_INFO,
        severityText: warn ? 'WARN' : 'INFO',
        body: { stringValue: entryJson(entry) },
        attributes,
      };
    });
    return {
      resourceLogs: [{ resource: this.resource, scopeLogs: [{ scope: { name: 'sidewall.flows', version: '1' }, logRecords }] }],
    };
  }

  private onExportDone(batch: OutstandingBatch, err: Grpc.ServiceError | null): void {
    this.inFlight = false;
    const size = batch.entries.length;
    if (err === null) {
      this.counts.sent += size;
      metrics.exportSent.inc({ exporter: 'otlp' }, size);
      this.batch = null;
    } else if (RETRYABLE.has(err.code) && Date.now() - batch.firstAttemptAt < this.maxRetryMs && !this.closed) {
      this.counts.retries++;
      metrics.exportRetries.inc({ exporter: 'otlp' });
      if (AMBIGUOUS.has(err.code)) this.counts.possibleDuplicates += size;
      const exponential = Math.min(this.maxBackoffMs, this.initialBackoffMs * 2 ** (batch.attempts - 1));
      // Full jitter on the upper half: sidecars that lost the same collector do not retry in step.
      const delay = exponential / 2 + Math.random() * (exponential / 2);
      if (batch.attempts === 1) this.logger?.warn({ code: err.code, details: err.details, records: size }, 'OTLP export failed; retrying');
      this.arm(delay);
      return;
    } else {
      this.drop(size, this.closed ? 'shutdown' : RETRYABLE.has(err.code) ? 'retry-exhausted' : 'rejected');
      this.logger?.warn({ code: err.code, details: err.details, records: size }, 'OTLP export failed; batch dropped');
      this.batch = null;
    }
    metrics.exportQueueDepth.set({ exporter: 'otlp' }, this.queue.length);
    if (this.queue.length >= this.maxBatchSize || (this.closed && this.queue.length > 0)) this.arm(0);
    else if (this.queue.length > 0) this.arm(this.batchDelayMs);
    else this.notifyIdle();
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Resolves when nothing is queued or in flight (tests, shutdown). */
  idle(): Promise<void> {
    if (!this.inFlight && this.batch === null && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async close(deadlineMs: number): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Send what is queued now, without waiting for the batch delay; retries stop (see onExportDone).
    if (!this.inFlight) this.arm(0);
    await Promise.race([this.idle(), sleepUnref(deadlineMs - Date.now())]);
    if (this.timer !== null) clearTimeout(this.timer);
    const left = this.queue.length + (this.batch !== null && !this.inFlight ? this.batch.entries.length : 0);
    if (left > 0) this.drop(left, 'shutdown');
    this.queue.clear();
    this.client.close();
    this.publishMetrics();
    this.removeCollectHook();
  }
}
