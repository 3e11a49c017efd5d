// Issue 8's numbers: propagation delay and memory of the workload identity stream at 10,000 pods
// and 1,000 changes a second (a fake API server, the real controller, N sidecar clients in one
// process), and the cost of a per-connection identity lookup.
// Run: npm run build && node dist/perf/identity-churn.js [--pods 10000] [--rate 1000] [--seconds 10] [--sidecars 4]
import { parseArgs } from 'node:util';
import { LRUCache } from 'lru-cache';
import { WorkloadDirectory } from '../src/identity/workload-directory.js';
import { runChurn } from '../test/unit/identity/churn.js';

const { values } = parseArgs({
  options: {
    pods: { type: 'string', default: '10000' },
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '10' },
    sidecars: { type: 'string', default: '4' },
    'batch-ms': { type: 'string', default: '20' },
  },
});

function lookupCost(pods: number): { directoryNs: number; lruNs: number } {
  const directory = new WorkloadDirectory();
  const entries = Array.from({ length: pods }, (_, i) => ({ ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, namespace: 'shop', pod: `p-${i}`, labels: { app: `a-${i % 200}` }, serviceAccount: 'sa' }));
  directory.replaceCluster(entries);
  const lru = new LRUCache<string, object>({ max: 4096 });
  const ips = entries.map((e) => e.ip);
  const rounds = 2_000_000;
  let sink = 0;
  let t = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) if (directory.lookup(ips[i % pods]!) !== undefined) sink++;
  const directoryNs = Number(process.hrtime.bigint() - t) / rounds;
  t = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) {
    const ip = ips[i % pods]!;
    let hit = lru.get(ip);
    if (hit === undefined) {
      hit = directory.lookup(ip)!;
      lru.set(ip, hit);
    }
    sink += hit === undefined ? 0 : 1;
  }
  const lruNs = Number(process.hrtime.bigint() - t) / rounds;
  if (sink === 0) throw new Error('no lookups');
  return { directoryNs: Math.round(directoryNs * 10) / 10, lruNs: Math.round(lruNs * 10) / 10 };
}

const result = await runChurn({
  pods: Number(values.pods),
  changesPerSecond: Number(values.rate),
  seconds: Number(values.seconds),
  sidecars: Number(values.sidecars),
  batchMs: Number(values['batch-ms']),
});
const lookup = lookupCost(Number(values.pods));
const rows: Array<[string, string]> = [
  ['pods', String(result.pods)],
  ['sidecars (clients)', String(result.sidecars)],
  ['changes (rate achieved)', `${result.changes} (${result.achievedRate}/s)`],
  ['controller versions taken', String(result.controllerVersion)],
  ['first sync: controller list + snapshot to all sidecars', `${result.initialSyncMs} ms`],
  ['propagation delay p50 / p90 / p99 / max', `${result.delayMs.p50} / ${result.delayMs.p90} / ${result.delayMs.p99} / ${result.delayMs.max} ms`],
  ['controller heap (informer cache + index)', `${result.heapMiB.controller} MiB`],
  ['sidecar heap (identity map)', `${result.heapMiB.perSidecar} MiB`],
  ['fake API server heap (not part of the product)', `${result.heapMiB.apiServer} MiB`],
  ['process RSS (everything above)', `${result.rssMiB} MiB`],
  ['every sidecar equal to the API server at the end', result.consistent ? 'yes' : 'NO'],
  ['lookup: WorkloadDirectory.lookup', `${lookup.directoryNs} ns`],
  ['lookup: lru-cache (4096) in front of it', `${lookup.lruNs} ns`],
];
process.stdout.write(`| identity churn | |\n| --- | --- |\n${rows.map(([k, v]) => `| ${k} | ${v} |`).join('\n')}\n`);
process.stdout.write(JSON.stringify({ ...result, lookup }) + '\n');
process.exitCode = result.consistent ? 0 : 1;
