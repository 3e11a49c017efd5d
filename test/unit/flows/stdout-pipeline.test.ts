import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFlowPipeline, FlowClock, parseRfc3339Nano, StdoutExporter } from '../../../src/flows/index.js';
import type { FlowEntry, FlowRecord } from '../../../src/flows/index.js';
import { metricsText } from '../../../src/metrics/index.js';
import { assertValidFlowRecords, flowRecordErrors, parseFlowLines } from './flow-schema.js';
import { draftFor, testPod } from './fixtures.js';

function tempFile(name: string): string {
  return join(mkdtempSync(join(tmpdir(), 'sidewall-flows-')), name);
}

describe('flow clock', () => {
  it('formats RFC 3339 UTC with nine fraction digits', () => {
    const clock = new FlowClock();
    expect(clock.format(1_795_446_654_123_456_789n)).toBe('2026-11-23T15:10:54.123456789Z');
    expect(clock.format(1_795_446_654_000_000_007n)).toBe('2026-11-23T15:10:54.000000007Z');
    expect(parseRfc3339Nano('2026-11-23T15:10:54.123456789Z')).toBe(1_795_446_654_123_456_789n);
  });

  it('tracks the wall clock and never goes backwards', () => {
    const clock = new FlowClock();
    let previous = clock.nowNs();
    expect(Number(previous / 1_000_000n) - Date.now()).toBeLessThan(50);
    for (let i = 0; i < 1000; i++) {
      const now = clock.nowNs();
      expect(now >= previous).toBe(true);
      previous = now;
    }
  });
});

describe('stdout exporter', () => {
  it('writes every record as a schema-valid JSON line with consecutive seq and ordered nanosecond times', async () => {
    const path = tempFile('flows.jsonl');
    const pipeline = createFlowPipeline({ pod: testPod, stdout: { path }, ringSize: 0 });
    for (let i = 0; i < 500; i++) pipeline.emit(draftFor(i));
    await pipeline.close();

    const records = parseFlowLines(readFileSync(path, 'utf8')) as FlowRecord[];
    expect(records).toHaveLength(500);
    assertValidFlowRecords(records);
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
    const times = records.map((r) => parseRfc3339Nano(r.time));
    for (let i = 1; i < times.length; i++) expect((times[i] ?? 0n) >= (times[i - 1] ?? 0n)).toBe(true);
    expect(records[0]?.pod).toEqual(testPod);
    expect(records[1]).toMatchObject({ type: 'request', verdict: 'denied', ruleId: 'deny-admin', l7: { path: '/admin' } });
    expect(records[2]?.tunnel).toEqual({ evidence: 'client sent "SSH-2.0-OpenSSH_9.2p1"', confidence: 0.99, kind: 'ssh', expected: 'http', detected: 'ssh', blocked: true });
  });

  it('rejects records the schema forbids', () => {
    expect(flowRecordErrors({ seq: 1 })).not.toEqual([]);
    const good = { time: '2026-11-23T15:10:54.123456789Z', seq: 1, ...draftFor(0), pod: testPod };
    expect(flowRecordErrors(good)).toEqual([]);
    expect(flowRecordErrors({ ...good, time: '2026-11-23T15:10:54.123Z' })).not.toEqual([]);
    expect(flowRecordErrors({ ...good, verdict: 'maybe' })).not.toEqual([]);
  });

  it('drops the oldest records when its queue overflows, and the seq gap equals the drop count', async () => {
    const path = tempFile('overflow.jsonl');
    const exporter = new StdoutExporter({ path, queueSize: 100 });
    const pipeline = createFlowPipeline({ pod: testPod, stdout: false, ringSize: 0, sinks: [exporter] });
    // All in one tick: the writer only runs on setImmediate, so the queue must absorb the burst.
    for (let i = 0; i < 10_000; i++) pipeline.emit(draftFor(i));
    expect(exporter.queued).toBe(100);
    expect(exporter.dropped).toBe(9_900);
    await pipeline.close();

    const records = parseFlowLines(readFileSync(path, 'utf8')) as FlowRecord[];
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 100 }, (_, i) => 9_901 + i));
    const firstSeq = records[0]?.seq ?? 0;
    expect(firstSeq - 1).toBe(exporter.dropped);
    expect(await metricsText()).toContain(`sidewall_flow_export_dropped_total{exporter="stdout",reason="overflow"} ${exporter.dropped}`);
  });

  it('emits periodic connection records for tracked connections and counts metrics once', async () => {
    const path = tempFile('interim.jsonl');
    // Waits for the second interim record (not a fixed sleep: on a loaded machine 100 ms could
    // hold a single 30 ms tick).
    let interimSeen = 0;
    let secondInterim: () => void = () => {};
    const twoInterim = new Promise<void>((resolve) => (secondInterim = resolve));
    const counter = { name: 'interim-counter', offer(entry: FlowEntry): void { if (entry.record.interim === true && ++interimSeen === 2) secondInterim(); }, close: async () => undefined };
    const pipeline = createFlowPipeline({ pod: testPod, stdout: { path }, ringSize: 0, interimIntervalMs: 30, sinks: [counter] });
    let sent = 0;
    const draft = () => ({ ...draftFor(3), flowId: 'long-1', verdict: 'allowed' as const, bytes: { sent, received: 0 } });
    const tracked = pipeline.trackConnection('long-1', draft);
    sent = 100;
    await twoInterim;
    tracked.stop();
    sent = 250;
    pipeline.emit({ ...draft(), reason: 'fin' });
    await pipeline.close();
    const records = parseFlowLines(readFileSync(path, 'utf8')) as FlowRecord[];
    assertValidFlowRecords(records);
    const interim = records.filter((r) => r.interim === true);
    expect(interim.length).toBeGreaterThanOrEqual(2);
    expect(interim.every((r) => r.flowId === 'long-1' && r.type === 'connection')).toBe(true);
    const last = records[records.length - 1];
    expect(last).toMatchObject({ flowId: 'long-1', reason: 'fin', bytes: { sent: 250 } });
    expect(last?.interim).toBeUndefined();
  });

  it('never throws from emit, even when an exporter fails', () => {
    const failing = { name: 'broken', offer(_entry: FlowEntry): void { throw new Error('boom'); }, close: async () => undefined };
    const pipeline = createFlowPipeline({ pod: testPod, stdout: false, ringSize: 0, sinks: [failing] });
    expect(() => pipeline.emit(draftFor(0))).not.toThrow();
    expect(pipeline.lastSeq).toBe(1);
  });
});
