// Issue 20's numbers: propagation delay and memory of the Service map at 2,000 Services and
// 20,000 endpoints (a fake API server, the real controller, N sidecar clients in one process).
// Set-up: 20,000 pods, each the one endpoint of its slot in one of 2,000 Services (10 endpoints,
// one EndpointSlice each). Churn: endpoint readiness flips (a pod going unready/ready, as during
// rollouts and probe failures) at a fixed rate; the delay is API server event → every sidecar's
// directory sees the Service's new endpoint list. Then the cost of a Service lookup per connection.
// Run: npm run build && node dist/perf/service-churn.js [--services 2000] [--per-service 10] [--rate 500] [--seconds 10] [--sidecars 2]
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { IdentityController } from '../src/controller/identity-controller.js';
import { IdentityClient, serviceEntry } from '../src/identity/identity-client.js';
import { WorkloadDirectory } from '../src/identity/workload-directory.js';
import { FakeApiServer, makePod, makeService, makeSlice } from '../test/unit/identity/fake-apiserver.js';
import { silentLog, waitUntil } from '../test/unit/identity/helpers.js';

const { values } = parseArgs({
  options: {
    services: { type: 'string', default: '2000' },
    'per-service': { type: 'string', default: '10' },
    rate: { type: 'string', default: '500' },
    seconds: { type: 'string', default: '10' },
    sidecars: { type: 'string', default: '2' },
    'batch-ms': { type: 'string', default: '20' },
  },
});
const SERVICES = Number(values.services);
const PER = Number(values['per-service']);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const SIDECARS = Number(values.sidecars);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
function heapMiB(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 1048576;
}
const podIp = (n: number) => `10.${64 + ((n >> 16) & 63)}.${(n >> 8) & 255}.${n & 255}`;
const vip = (s: number) => `10.96.${(s >> 8) & 255}.${s & 255}`;
const ns = (s: number) => `ns-${s % 20}`;
const quantile = (sorted: number[], q: number) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);

const base = heapMiB();
const api = new FakeApiServer();
await api.start();
for (let i = 0; i < 20; i++) api.addNamespace(`ns-${i}`);
/** Per Service, the readiness of each of its endpoints (what the slice says). */
const ready: boolean[][] = [];
for (let s = 0; s < SERVICES; s++) {
  const eps: Array<[string, boolean]> = [];
  for (let e = 0; e < PER; e++) {
    const n = s * PER + e + 1;
    api.addPod(makePod(ns(s), `svc${s}-${e}`, podIp(n), { app: `svc-${s}`, version: 'v1' }, { serviceAccount: `sa-${s}` }));
    eps.push([podIp(n), true]);
  }
  ready.push(eps.map(() => true));
  api.putObject(makeService(ns(s), `svc-${s}`, [vip(s)], [{ port: 80, targetPort: 8080 }], { app: `svc-${s}` }));
  api.putObject(makeSlice(ns(s), `svc-${s}-abc`, `svc-${s}`, eps));
}
api.compact();
const afterApi = heapMiB();

const controller = new IdentityController({ kubeConfig: api.kubeConfig(), log: silentLog, auth: 'none', batchMs: Number(values['batch-ms']) });
const started = performance.now();
const port = await controller.start('127.0.0.1:0', grpc.ServerCredentials.createInsecure());
await controller.whenSynced();
const listedMs = performance.now() - started;
const afterController = heapMiB();
const sidecars: Array<{ client: IdentityClient; directory: WorkloadDirectory }> = [];
for (let i = 0; i < SIDECARS; i++) {
  const directory = new WorkloadDirectory();
  const client = new IdentityClient({ address: `127.0.0.1:${port}`, directory, client: `bench/s-${i}`, log: silentLog });
  client.start();
  sidecars.push({ client, directory });
}
await waitUntil(() => sidecars.every((s) => s.client.status().state === 'synced' && s.directory.services.clusterSize === SERVICES), 'the sidecars to sync', 120_000);
const syncMs = performance.now() - started;
const afterSidecars = heapMiB();
// What one sidecar's Service layer costs on its own: the same Services in a directory without pods.
const servicesOnly = new WorkloadDirectory();
const messages = controller.index.serviceSnapshot();
const before = heapMiB();
servicesOnly.services.replaceCluster(messages.map(serviceEntry));
const serviceMapMiB = heapMiB() - before;

// Churn: flip one endpoint's readiness; pending per Service: when, and the endpoint list expected.
const pending = new Map<number, { at: number; expect: string; seen: Set<number> }>();
const delays: number[] = [];
const endpointsOf = (d: WorkloadDirectory, s: number) => (d.services.get(ns(s), `svc-${s}`)?.endpoints ?? []).join(',');
const expected = (s: number) => ready[s]!.map((r, e) => (r ? podIp(s * PER + e + 1) : null)).filter((x): x is string => x !== null).sort().join(',');
sidecars.forEach((sc, i) =>
  sc.client.on('update', () => {
    const now = performance.now();
    for (const [s, change] of pending) {
      if (change.seen.has(i) || endpointsOf(sc.directory, s) !== change.expect) continue;
      change.seen.add(i);
      if (change.seen.size === SIDECARS) {
        delays.push(now - change.at);
        pending.delete(s);
      }
    }
  }),
);
let changes = 0;
const total = RATE * SECONDS;
const churnStart = performance.now();
await new Promise<void>((resolve) => {
  const timer = setInterval(() => {
    const due = Math.min(total, Math.round(((performance.now() - churnStart) / 1000) * RATE));
    while (changes < due) {
      const s = Math.floor(Math.random() * SERVICES);
      const e = Math.floor(Math.random() * PER);
      ready[s]![e] = !ready[s]![e];
      const eps = ready[s]!.map((r, k) => [podIp(s * PER + k + 1), r] as [string, boolean]);
      const at = performance.now();
      api.updateObject('endpointslices', ns(s), `svc-${s}-abc`, (o) => (o.endpoints = makeSlice(ns(s), 'x', `svc-${s}`, eps).endpoints));
      // A newer change of the same Service replaces the older one (its time is the newer's).
      pending.set(s, { at, expect: expected(s), seen: new Set() });
      changes++;
    }
    if (changes >= total) {
      clearInterval(timer);
      resolve();
    }
  }, 10);
});
const churnSeconds = (performance.now() - churnStart) / 1000;
await waitUntil(() => pending.size === 0, 'every change to reach every sidecar', 60_000).catch(() => undefined);
let consistent = pending.size === 0;
for (let s = 0; s < SERVICES; s++) for (const sc of sidecars) if (endpointsOf(sc.directory, s) !== expected(s)) consistent = false;

// Per-connection cost: the Service at a cluster IP with its endpoints' shared workload (cached
// per map generation), and the same after every map change (cache invalidated each time).
const d = sidecars[0]!.directory;
const rounds = 200_000;
const vips = Array.from({ length: SERVICES }, (_, s) => vip(s));
const pods = Array.from({ length: SERVICES }, (_, s) => podIp(s * PER + 1));
let sink = 0;
let t = process.hrtime.bigint();
for (let i = 0; i < rounds; i++) if (d.describe(pods[i % SERVICES]!, 80, true).workload !== undefined) sink++;
const podNs = Number(process.hrtime.bigint() - t) / rounds;
t = process.hrtime.bigint();
for (let i = 0; i < rounds; i++) if (d.describe(vips[i % SERVICES]!, 80, true).service !== undefined) sink++;
const cachedNs = Number(process.hrtime.bigint() - t) / rounds;
t = process.hrtime.bigint();
for (let i = 0; i < rounds / 10; i++) {
  d.services.invalidate();
  if (d.describe(vips[i % SERVICES]!, 80, true).service !== undefined) sink++;
}
const uncachedNs = Number(process.hrtime.bigint() - t) / (rounds / 10);
if (sink === 0) throw new Error('no lookups');

delays.sort((a, b) => a - b);
const r1 = (n: number) => Math.round(n * 10) / 10;
const rows: Array<[string, string]> = [
  ['Services / endpoints (pods)', `${SERVICES} / ${SERVICES * PER}`],
  ['sidecars (clients)', String(SIDECARS)],
  ['endpoint changes (rate achieved)', `${changes} (${Math.round(changes / churnSeconds)}/s)`],
  ['controller: all four lists in', `${Math.round(listedMs)} ms`],
  ['first sync: lists + snapshot to all sidecars', `${Math.round(syncMs)} ms`],
  ['propagation delay p50 / p90 / p99 / max', `${r1(quantile(delays, 0.5))} / ${r1(quantile(delays, 0.9))} / ${r1(quantile(delays, 0.99))} / ${r1(delays.at(-1) ?? 0)} ms`],
  ['heap: fake API server', `${r1(afterApi - base)} MiB`],
  ['heap: controller (informer caches + pod and Service index)', `${r1(afterController - afterApi)} MiB`],
  ['heap: per sidecar (pod map + Service map)', `${r1((afterSidecars - afterController) / SIDECARS)} MiB`],
  ['heap: of which the Service map', `${r1(serviceMapMiB)} MiB`],
  ['destination lookup per connection: pod IP / cluster IP (cached)', `${r1(podNs)} ns / ${r1(cachedNs)} ns`],
  ['cluster IP right after a map change (endpoints recomputed)', `${r1(uncachedNs / 1000)} µs`],
  ['maps equal to the API server at the end', String(consistent)],
];
for (const [k, v] of rows) process.stdout.write(`${k.padEnd(62)} ${v}\n`);
process.stdout.write(JSON.stringify({ services: SERVICES, endpoints: SERVICES * PER, changes, listedMs: Math.round(listedMs), syncMs: Math.round(syncMs), delayMs: { p50: r1(quantile(delays, 0.5)), p90: r1(quantile(delays, 0.9)), p99: r1(quantile(delays, 0.99)), max: r1(delays.at(-1) ?? 0) }, consistent }) + '\n');
for (const sc of sidecars) sc.client.close();
await controller.close();
await api.close();
process.exit(consistent ? 0 : 1);
