// The churn scenario of issue 8, shared by the churn test and perf/identity-churn.ts: N pods in a
// fake API server, a controller, and sidecar clients; then pods are replaced and relabelled at a
// fixed rate while each change's propagation delay (API server event → applied in every sidecar's
// directory) is measured, and the heap is sampled at each stage.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as grpc from '@grpc/grpc-js';
import { IdentityController } from '../../../src/controller/identity-controller.js';
import { IdentityClient } from '../../../src/identity/identity-client.js';
import { WorkloadDirectory } from '../../../src/identity/workload-directory.js';
import { FakeApiServer, makePod } from './fake-apiserver.js';
import { silentLog, waitUntil } from './helpers.js';

export interface ChurnOptions {
  pods: number;
  changesPerSecond: number;
  seconds: number;
  sidecars: number;
  /** Distinct Deployments (label sets) the pods belong to. */
  deployments?: number;
  batchMs?: number;
}

export interface ChurnResult {
  pods: number;
  sidecars: number;
  changes: number;
  achievedRate: number;
  initialSyncMs: number;
  delayMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  /** Heap growth (MiB) measured after a full GC at each stage. */
  heapMiB: { apiServer: number; controller: number; perSidecar: number };
  rssMiB: number;
  controllerVersion: number;
  consistent: boolean;
}

function gcFunction(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

function heapMiB(gc: () => void): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 1048576;
}

function ipOf(n: number): string {
  return `10.${64 + ((n >> 16) & 63)}.${(n >> 8) & 255}.${n & 255}`;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export async function runChurn(options: ChurnOptions): Promise<ChurnResult> {
  const gc = gcFunction();
  const deployments = options.deployments ?? 200;
  const base = heapMiB(gc);
  const api = new FakeApiServer();
  await api.start();
  // Live pods: name → ip; every pod of deployment d has labels {app: d-d, team: t-(d%10)}.
  const live = new Map<string, { ip: string; deployment: number }>();
  let nextIp = 1;
  let nextName = 0;
  const labelsOf = (d: number, extra?: string) => ({ app: `d-${d}`, team: `t-${d % 10}`, 'pod-template-hash': `h${d}${extra ?? ''}` });
  const namespaceOf = (d: number) => `ns-${d % 20}`;
  for (let i = 0; i < 20; i++) api.addNamespace(`ns-${i}`);
  for (let i = 0; i < options.pods; i++) {
    const d = i % deployments;
    const name = `p-${nextName++}`;
    const ip = ipOf(nextIp++);
    api.addPod(makePod(namespaceOf(d), name, ip, labelsOf(d), { serviceAccount: `sa-${d}`, node: `node-${i % 50}` }));
    live.set(name, { ip, deployment: d });
  }
  api.compact(); // the history of the set-up is not needed
  const afterApi = heapMiB(gc);

  const controller = new IdentityController({ kubeConfig: api.kubeConfig(), log: silentLog, auth: 'none', batchMs: options.batchMs ?? 20 });
  const started = performance.now();
  const port = await controller.start('127.0.0.1:0', grpc.ServerCredentials.createInsecure());
  await controller.whenSynced();
  const afterController = heapMiB(gc);

  const sidecars: Array<{ client: IdentityClient; directory: WorkloadDirectory }> = [];
  for (let i = 0; i < options.sidecars; i++) {
    const directory = new WorkloadDirectory();
    const client = new IdentityClient({ address: `127.0.0.1:${port}`, directory, client: `bench/s-${i}`, log: silentLog });
    client.start();
    sidecars.push({ client, directory });
  }
  await waitUntil(() => sidecars.every((s) => s.client.status().state === 'synced'), 'the sidecars to sync', 60_000);
  const initialSyncMs = performance.now() - started;
  const afterSidecars = heapMiB(gc);

  // Pending changes: ip → when it was made and what every sidecar must end up seeing there.
  const pending = new Map<string, { at: number; pod: string | null; labelHash?: string; seen: number }>();
  const delays: number[] = [];
  // Each sidecar counts a change once: track per sidecar which IPs it has confirmed.
  const confirmed = sidecars.map(() => new Set<string>());
  sidecars.forEach((s, i) =>
    s.client.on('update', () => {
      const now = performance.now();
      for (const [ip, change] of pending) {
        if (confirmed[i]!.has(ip)) continue;
        const found = s.directory.lookup(ip);
        const applied = change.pod === null ? found === undefined : found?.pod === change.pod && (change.labelHash === undefined || found.labels?.['pod-template-hash'] === change.labelHash);
        if (applied) {
          confirmed[i]!.add(ip);
          if (++change.seen === sidecars.length) {
            delays.push(now - change.at);
            pending.delete(ip);
            for (const set of confirmed) set.delete(ip);
          }
        }
      }
    }),
  );

  // A new change of an IP a sidecar already confirmed for an older, still pending change: that
  // sidecar must confirm again (else the change waits for a confirmation that never comes).
  const track = (ip: string, change: { at: number; pod: string | null; labelHash?: string; seen: number }) => {
    pending.set(ip, change);
    for (const set of confirmed) set.delete(ip);
  };

  // Churn: a rollout step (delete a pod, create its replacement on a new IP) or a relabel.
  let changes = 0;
  const names = [...live.keys()];
  const total = Math.round(options.changesPerSecond * options.seconds);
  const tickMs = 10;
  const churnStart = performance.now();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.round(((performance.now() - churnStart) / 1000) * options.changesPerSecond));
      while (changes < due) {
        const at = performance.now();
        const pick = Math.floor(Math.random() * names.length);
        const name = names[pick]!;
        const pod = live.get(name)!;
        const d = pod.deployment;
        if (changes % 4 === 3) {
          api.updatePod(namespaceOf(d), name, (p) => (p.metadata.labels = labelsOf(d, `-${changes}`)));
          track(pod.ip, { at, pod: name, labelHash: `h${d}-${changes}`, seen: 0 });
        } else {
          api.deletePod(namespaceOf(d), name);
          track(pod.ip, { at, pod: null, seen: 0 });
          live.delete(name);
          const fresh = `p-${nextName++}`;
          const ip = ipOf(nextIp++);
          api.addPod(makePod(namespaceOf(d), fresh, ip, labelsOf(d), { serviceAccount: `sa-${d}`, node: `node-${nextName % 50}` }));
          live.set(fresh, { ip, deployment: d });
          names[pick] = fresh;
          track(ip, { at, pod: fresh, seen: 0 });
        }
        changes++;
      }
      if (changes >= total) {
        clearInterval(timer);
        resolve();
      }
    }, tickMs);
  });
  const churnSeconds = (performance.now() - churnStart) / 1000;
  await waitUntil(() => pending.size === 0, 'every change to reach every sidecar', 30_000).catch(() => undefined);
  const rssMiB = process.memoryUsage().rss / 1048576;

  // Every sidecar's map is the controller's, and the controller's is the API server's.
  let consistent = pending.size === 0;
  for (const [name, { ip }] of live) {
    if (controller.index.get(ip)?.pod !== name) consistent = false;
    for (const s of sidecars) if (s.directory.lookup(ip)?.pod !== name) consistent = false;
  }
  for (const s of sidecars) if (s.directory.clusterSize !== live.size) consistent = false;
  if (controller.index.size !== live.size) consistent = false;

  delays.sort((a, b) => a - b);
  const mean = delays.reduce((a, b) => a + b, 0) / Math.max(1, delays.length);
  const result: ChurnResult = {
    pods: options.pods,
    sidecars: options.sidecars,
    changes,
    achievedRate: Math.round(changes / churnSeconds),
    initialSyncMs: Math.round(initialSyncMs),
    delayMs: { p50: round(quantile(delays, 0.5)), p90: round(quantile(delays, 0.9)), p99: round(quantile(delays, 0.99)), max: round(delays.at(-1) ?? 0), mean: round(mean) },
    heapMiB: { apiServer: round(afterApi - base), controller: round(afterController - afterApi), perSidecar: round((afterSidecars - afterController) / Math.max(1, options.sidecars)) },
    rssMiB: round(rssMiB),
    controllerVersion: controller.index.version,
    consistent,
  };
  for (const s of sidecars) s.client.close();
  await controller.close();
  await api.close();
  return result;
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
