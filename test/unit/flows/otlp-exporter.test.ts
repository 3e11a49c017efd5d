import { afterEach, describe, expect, it } from 'vitest';
import { createFlowPipeline, InvalidOtlpEndpointError, OtlpExporter, parseRfc3339Nano } from '../../../src/flows/index.js';
import type { FlowRecord } from '../../../src/flows/index.js';
import { metricsText } from '../../../src/metrics/index.js';
import { TestCollector } from './otlp-collector.js';
import { assertValidFlowRecords } from './flow-schema.js';
import { draftFor, testPod } from './fixtures.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const collectors: TestCollector[] = [];
afterEach(() => {
  for (const collector of collectors.splice(0)) collector.stop();
});

async function startCollector(): Promise<TestCollector> {
  const collector = new TestCollector();
  await collector.start();
  collectors.push(collector);
  return collector;
}

/** Emits count records spread over a few event-loop turns, as traffic would. */
async function emitSpread(emit: (i: number) => void, from: number, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    emit(from + i);
    if (i % 100 === 99) await sleep(1);
  }
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await sleep(10);
  }
}

describe('OTLP logs exporter', () => {
  it('delivers records as LogRecords whose body is the schema-valid JSON record', async () => {
    const collector = await startCollector();
    const pipeline = createFlowPipeline({ pod: testPod, stdout: false, ringSize: 0, otlp: { endpoint: collector.address, batchDelayMs: 20 } });
    for (let i = 0; i < 40; i++) pipeline.emit(draftFor(i));
    await waitFor(() => collector.received.length === 40, 5000);
    await pipeline.close();

    const records = collector.received.map((log) => JSON.parse(log.body) as FlowRecord);
    assertValidFlowRecords(records);
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    const first = collector.received[0];
    expect(first?.resource).toMatchObject({ 'service.name': 'sidewall', 'k8s.namespace.name': 'shop', 'k8s.pod.name': 'cart-0' });
    expect(first?.attributes).toMatchObject({ 'sidewall.flow.type': 'request', 'sidewall.flow.verdict': 'allowed', 'sidewall.flow.rule_id': 'allow-catalog' });
    // The LogRecord time is the record's time, to the nanosecond.
    expect(BigInt(first?.timeUnixNano ?? '0')).toBe(parseRfc3339Nano(records[0]?.time ?? ''));
  });

  it('loses nothing silently while the collector is up, down, slow and restarted', async () => {
    const collector = await startCollector();
    const exporter = new OtlpExporter(
      { endpoint: collector.address, queueSize: 1000, maxBatchSize: 100, batchDelayMs: 10, timeoutMs: 250, initialBackoffMs: 20, maxBackoffMs: 200, maxRetryMs: 60_000 },
      testPod,
    );
    const pipeline = createFlowPipeline({ pod: testPod, stdout: false, ringSize: 0, sinks: [exporter] });
    const emit = (i: number) => pipeline.emit(draftFor(i));
    let next = 0;

    // Up.
    await emitSpread(emit, next, 500);
    next += 500;
    await exporter.idle();
    expect(exporter.stats()).toMatchObject({ sent: 500, dropped: 0 });

    // Down: the queue holds what it can (1000), the rest is dropped oldest-first and counted.
    collector.stop();
    await emitSpread(emit, next, 1500);
    next += 1500;
    expect(exporter.stats().dropped).toBeGreaterThan(0);
    await sleep(300);

    // Restarted on the same port: the backlog drains.
    await collector.start();
    await exporter.idle();

    // Slow: answers arrive after the exporter's deadline, so batches are retried (duplicates).
    collector.delayMs = 400;
    await emitSpread(emit, next, 300);
    next += 300;
    await sleep(700);
    collector.delayMs = 0;
    await exporter.idle();

    // Up again.
    await emitSpread(emit, next, 200);
    next += 200;
    await exporter.idle();
    await pipeline.close();

    const stats = exporter.stats();
    const seen = new Map<number, number>();
    for (const log of collector.received) seen.set(log.seq, (seen.get(log.seq) ?? 0) + 1);
    const missing: number[] = [];
    for (let seq = 1; seq <= next; seq++) if (!seen.has(seq)) missing.push(seq);
    const duplicates = collector.received.length - seen.size;

    // Every record arrived or was counted as dropped; the gaps a collector sees equal the counter.
    expect(missing.length).toBe(stats.dropped);
    expect(stats.dropped).toBeGreaterThan(0);
    // Each record was acknowledged exactly once or dropped exactly once.
    expect(stats.sent + stats.dropped).toBe(next);
    // Duplicates only from batches retried after an ambiguous failure, as documented.
    expect(duplicates).toBeGreaterThan(0);
    expect(duplicates).toBeLessThanOrEqual(stats.possibleDuplicates);
    // Overflow drops the oldest queued records: the gap is one run inside the outage burst.
    expect(missing[0]).toBeGreaterThan(500);
    expect((missing[missing.length - 1] ?? 0) - (missing[0] ?? 0) + 1).toBe(missing.length);
    expect(await metricsText()).toMatch(/sidewall_flow_export_retries_total\{exporter="otlp"\} [1-9]/);
  });

  it('refuses an endpoint that is not host:port', () => {
    expect(() => createFlowPipeline({ pod: testPod, stdout: false, ringSize: 0, otlp: { endpoint: 'not an endpoint' } })).toThrow(InvalidOtlpEndpointError);
  });

  it('emit stays fast while the collector is unreachable', async () => {
    const exporter = new OtlpExporter({ endpoint: '127.0.0.1:1', queueSize: 2000, batchDelayMs: 5, initialBackoffMs: 10, maxBackoffMs: 50 }, testPod);
    const pipeline = createFlowPipeline({ pod: testPod, stdout: false, ringSize: 0, sinks: [exporter] });
    const started = process.hrtime.bigint();
    for (let i = 0; i < 20_000; i++) pipeline.emit(draftFor(i));
    const perRecordUs = Number(process.hrtime.bigint() - started) / 1000 / 20_000;
    // Not a speed goal (perf/ measures speed): waiting on the dead collector would take its
    // connect timeouts, seconds; a few µs a record when idle, ~80 under a load average of 18.
    expect(perRecordUs).toBeLessThan(250);
    expect(exporter.stats().queued).toBeLessThanOrEqual(2000 + 512);
    await pipeline.close();
    expect(exporter.stats().sent).toBe(0);
    expect(exporter.stats().dropped).toBe(20_000);
  });
});
