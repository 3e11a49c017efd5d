// Workload identity end to end: a controller (fed by a local server that speaks the Kubernetes
// list/watch protocol) streams pod identities to a real sidecar in the namespace harness; rules
// written with labels allow one peer and deny the other, follow a relabel, and the flow records
// carry both ends' workloads. The controller listens on a unix socket: the pod's network
// namespace cannot reach the test process, its filesystem can.
import { chmodSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdentityController } from '../../src/controller/identity-controller.js';
import { Topology } from '../harness/netns.js';
import { Sidecar } from '../harness/sidecar.js';
import { assertValidFlowRecords } from '../unit/flows/flow-schema.js';
import { FakeApiServer, makePod } from '../unit/identity/fake-apiserver.js';
import { silentLog, waitUntil } from '../unit/identity/helpers.js';

const topo = new Topology({ name: 'id', subnet: 80 });
const sidecar = new Sidecar(topo);
const backendIp = topo.peerIp; // 10.77.80.2
const intruderIp = '10.77.80.3';
const PORT = 7070;
const api = new FakeApiServer();
let controller: IdentityController;
const socket = join(topo.dir, 'identity.sock');

const CONFIG = `mode: protect
defaultAction: deny
tunnels: off
identity:
  controller: unix:${socket}
rules:
  - id: to-backend
    action: allow
    direction: egress
    peer: { namespace: shop, labels: { app: backend }, serviceAccount: backend }
    ports: [${PORT}]
`;

async function startController(): Promise<void> {
  controller = new IdentityController({ kubeConfig: api.kubeConfig(), log: silentLog, auth: 'none', batchMs: 5, heartbeatMs: 1000 });
  rmSync(socket, { force: true }); // left by the controller before
  await controller.start(`unix://${socket}`, grpc.ServerCredentials.createInsecure());
  chmodSync(socket, 0o777); // the proxy runs as uid 1337
  await controller.whenSynced();
}

async function readiness(): Promise<{ ready: boolean; identity?: Record<string, unknown> }> {
  const r = await topo.execAsync(topo.podNs, 'curl', ['-s', 'http://127.0.0.1:15000/ready']);
  return JSON.parse(r.stdout) as { ready: boolean; identity?: Record<string, unknown> };
}

const connect = (ip: string) => topo.client(topo.podNs, ['read', ip, String(PORT)]);
const lastConnectionTo = (ip: string, after: number) => sidecar.waitForRecord((r) => r.type === 'connection' && r.dst.ip === ip && r.seq > after);
const lastSeq = () => sidecar.records.at(-1)?.seq ?? 0;

beforeAll(async () => {
  topo.create();
  topo.addPeerAddress(intruderIp);
  await api.start();
  api.addNamespace('shop');
  api.addPod(makePod('shop', 'backend-1', backendIp, { app: 'backend' }, { serviceAccount: 'backend' }));
  api.addPod(makePod('shop', 'scraper-1', intruderIp, { app: 'scraper' }, { serviceAccount: 'scraper' }));
  await startController();
  await topo.peer(topo.peerNs, 'whoami', '0.0.0.0', PORT);
  sidecar.init();
  await sidecar.start(CONFIG);
}, 90_000);

afterAll(async () => {
  try {
    await sidecar.teardown(); // every accepted connection ended in exactly one final record (throws with the numbers)
  } finally {
    await controller?.close();
    await api.close();
    await topo.destroy();
  }
});

describe('rules by labels', () => {
  it('reports the controller link in /ready', async () => {
    let detail = await readiness();
    for (let i = 0; i < 50 && detail.identity?.state !== 'synced'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      detail = await readiness();
    }
    expect(detail).toMatchObject({ ready: true, identity: { state: 'synced', stale: false, workloads: 2, version: controller.index.version } });
  });

  it('allows the peer whose labels match and denies the other, naming both workloads', async () => {
    const before = lastSeq();
    const allowed = await connect(backendIp);
    expect(allowed.stdout).toContain(`${PORT} `); // whoami answered
    const denied = await connect(intruderIp);
    expect(denied.stdout).not.toContain(`${PORT} `);
    const ok = await lastConnectionTo(backendIp, before);
    expect(ok).toMatchObject({ verdict: 'allowed', ruleId: 'to-backend', dst: { ip: backendIp, workload: { namespace: 'shop', pod: 'backend-1', labels: { app: 'backend' }, serviceAccount: 'backend' } } });
    expect((ok.src as { workload?: unknown }).workload).toMatchObject({ namespace: 'test', pod: 'app-0' });
    const no = await lastConnectionTo(intruderIp, before);
    expect(no).toMatchObject({ verdict: 'denied', ruleId: 'default', dst: { ip: intruderIp, workload: { pod: 'scraper-1', labels: { app: 'scraper' }, serviceAccount: 'scraper' } } });
    assertValidFlowRecords([ok, no]);
  });

  it('follows a relabel in the cluster without touching the sidecar', async () => {
    api.updatePod('shop', 'scraper-1', (p) => {
      p.metadata.labels = { app: 'backend' };
      (p.spec as { serviceAccountName: string }).serviceAccountName = 'backend';
    });
    const version = () => controller.index.version;
    const target = version();
    await waitUntil(() => controller.index.get(intruderIp)?.labels?.app === 'backend', 'the controller to see the relabel');
    // The sidecar applies it within the batch interval; poll /ready for its version.
    for (let i = 0; i < 50 && (await readiness()).identity?.version !== version(); i++) await new Promise((r) => setTimeout(r, 50));
    expect(target).toBeLessThanOrEqual(version());
    const before = lastSeq();
    const r = await connect(intruderIp);
    expect(r.stdout).toContain(`${PORT} `);
    expect(await lastConnectionTo(intruderIp, before)).toMatchObject({ verdict: 'allowed', ruleId: 'to-backend', dst: { workload: { pod: 'scraper-1', labels: { app: 'backend' } } } });
    // Back, for the next test.
    api.updatePod('shop', 'scraper-1', (p) => {
      p.metadata.labels = { app: 'scraper' };
      (p.spec as { serviceAccountName: string }).serviceAccountName = 'scraper';
    });
    for (let i = 0; i < 50 && (await readiness()).identity?.version !== version(); i++) await new Promise((r) => setTimeout(r, 50));
  });
});

describe('controller unreachable', () => {
  it('keeps the last map, still decides by labels, and says it is stale; then resumes', async () => {
    await controller.close();
    let detail = await readiness();
    for (let i = 0; i < 50 && detail.identity?.state === 'synced'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      detail = await readiness();
    }
    expect(detail).toMatchObject({ ready: true, identity: { state: 'disconnected', stale: true, workloads: 2 } });
    const metrics = await topo.execAsync(topo.podNs, 'curl', ['-s', 'http://127.0.0.1:15000/metrics']);
    expect(metrics.stdout).toMatch(/^sidewall_identity_controller_connected 0$/m);
    expect(metrics.stdout).toMatch(/^sidewall_identity_workloads 2$/m);
    const before = lastSeq();
    expect((await connect(backendIp)).stdout).toContain(`${PORT} `);
    expect((await connect(intruderIp)).stdout).not.toContain(`${PORT} `);
    expect(await lastConnectionTo(backendIp, before)).toMatchObject({ verdict: 'allowed', ruleId: 'to-backend', identityStale: true });
    expect(await lastConnectionTo(intruderIp, before)).toMatchObject({ verdict: 'denied', identityStale: true });

    // A new controller (new epoch): the sidecar takes its snapshot.
    api.deletePod('shop', 'scraper-1');
    await startController();
    for (let i = 0; i < 100 && detail.identity?.state !== 'synced'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      detail = await readiness();
    }
    expect(detail).toMatchObject({ identity: { state: 'synced', stale: false, workloads: 1, epoch: controller.index.epoch } });
    const after = lastSeq();
    await connect(intruderIp);
    const unknown = await lastConnectionTo(intruderIp, after);
    expect(unknown).toMatchObject({ verdict: 'denied' });
    expect((unknown.dst as { workload?: unknown }).workload).toBeUndefined();
  }, 60_000);
});
