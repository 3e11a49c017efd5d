// Flow export benchmark: records per second the pipeline stamps, serialises and exports, and the
// CPU it spends per record, for each exporter. Run it compiled: `npx tsc -p tsconfig.json`
// (which, unlike the build config, includes perf/ and test/), then
// `node dist/perf/export-bench.js [records]` (default 200,000). The OTLP collector runs in the same process, so the
// OTLP figures include the receiver's decoding: an upper bound on the exporter's own cost.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFlowPipeline, type FlowPipelineOptions, type FlowRecordDraft } from '../src/flows/index.js';
import { TestCollector } from '../test/unit/flows/otlp-collector.js';
import { draftFor, testPod } from '../test/unit/flows/fixtures.js';

interface Result {
  scenario: string;
  records: number;
  recordsPerSecond: number;
  cpuMicrosPerRecord: number;
  emitMicrosPerRecord: number;
  dropped: number;
}

async function measure(scenario: string, records: number, options: Omit<FlowPipelineOptions, 'pod'>, delivered: () => Promise<void>, drops: () => number): Promise<Result> {
  const drafts: FlowRecordDraft[] = Array.from({ length: 1000 }, (_, i) => draftFor(i));
  const pipeline = createFlowPipeline({ pod: testPod, ...options });
  const cpuBefore = process.cpuUsage();
  const started = process.hrtime.bigint();
  let emitNs = 0n;
  // Bursts of 1,000 with a turn of the event loop in between, as traffic would arrive.
  for (let i = 0; i < records; i += 1000) {
    const burst = process.hrtime.bigint();
    for (let j = 0; j < 1000; j++) pipeline.emit(drafts[j] as FlowRecordDraft);
    emitNs += process.hrtime.bigint() - burst;
    await new Promise((resolve) => setImmediate(resolve));
  }
  await delivered();
  await pipeline.close();
  const elapsedNs = Number(process.hrtime.bigint() - started);
  const cpu = process.cpuUsage(cpuBefore);
  return {
    scenario,
    records,
    recordsPerSecond: Math.round(records / (elapsedNs / 1e9)),
    cpuMicrosPerRecord: Number(((cpu.user + cpu.system) / records).toFixed(2)),
    emitMicrosPerRecord: Number((Number(emitNs) / 1000 / records).toFixed(2)),
    dropped: drops(),
  };
}

async function main(): Promise<void> {
  const records = Number(process.argv[2] ?? 200_000);
  const dir = mkdtempSync(join(tmpdir(), 'sidewall-bench-'));
  const results: Result[] = [];
  const none = async (): Promise<void> => undefined;

  results.push(await measure('emit only (no exporter)', records, { stdout: false, ringSize: 0 }, none, () => 0));
  results.push(await measure('observe ring only', records, { stdout: false }, none, () => 0));
  results.push(await measure('stdout JSON lines to a file', records, { stdout: { path: join(dir, 'flows.jsonl'), queueSize: records } }, none, () => 0));

  const collector = new TestCollector();
  await collector.start();
  const target = collector.received.length + records;
  results.push(
    await measure(
      'OTLP/gRPC to an in-process collector',
      records,
      { stdout: false, ringSize: 0, otlp: { endpoint: collector.address, queueSize: records, batchDelayMs: 50 } },
      async () => {
        while (collector.received.length < target) await new Promise((resolve) => setTimeout(resolve, 5));
      },
      () => target - collector.received.length,
    ),
  );
  collector.stop();
  rmSync(dir, { recursive: true, force: true });

  for (const r of results) {
    process.stdout.write(
      `${r.scenario.padEnd(40)} ${String(r.recordsPerSecond).padStart(9)} records/s  ${String(r.cpuMicrosPerRecord).padStart(6)} µs CPU/record  ${String(r.emitMicrosPerRecord).padStart(5)} µs emit/record  dropped ${r.dropped}\n`,
    );
  }
}

void main();
