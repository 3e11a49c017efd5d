// The identity stream end to end in one process: the controller (fake API server → informers →
// index → gRPC) and sidecar clients feeding WorkloadDirectories. Snapshot then changes,
// authentication by TokenReview, disconnect and resume by version, controller restarts.
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IdentityController } from '../../../src/controller/identity-controller.js';
import { IdentityServer } from '../../../src/controller/identity-server.js';
import { WorkloadIndex } from '../../../src/controller/workload-index.js';
import { IdentityClient } from '../../../src/identity/identity-client.js';
import { WorkloadDirectory } from '../../../src/identity/workload-directory.js';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeApiServer, makePod } from './fake-apiserver.js';
import { silentLog, waitUntil } from './helpers.js';

const insecure = grpc.ServerCredentials.createInsecure();
let api: FakeApiServer;
let controller: IdentityController;
let port: number;
const clients: IdentityClient[] = [];
const dir = mkdtempSync(join(tmpdir(), 'sidewall-identity-'));

function tokenFile(token: string): string {
  const path = join(dir, `token-${token}`);
  writeFileSync(path, `${token}\n`);
  return path;
}

function subscribe(options: { token?: string; directory?: WorkloadDirectory; heartbeatTimeoutMs?: number; address?: string } = {}): { client: IdentityClient; directory: WorkloadDirectory } {
  const directory = options.directory ?? new WorkloadDirectory();
  const client = new IdentityClient({
    address: options.address ?? `127.0.0.1:${port}`,
    directory,
    client: 'test/app-0',
    log: silentLog,
    retryMinMs: 20,
    retryMaxMs: 100,
    ...(options.token !== undefined ? { tokenFile: tokenFile(options.token) } : {}),
    ...(options.heartbeatTimeoutMs !== undefined ? { heartbeatTimeoutMs: options.heartbeatTimeoutMs } : {}),
  });
  clients.push(client);
  client.start();
  return { client, directory };
}

async function startController(auth: 'tokenreview' | 'none', extra: Partial<ConstructorParameters<typeof IdentityController>[0]> = {}): Promise<void> {
  controller = new IdentityController({ kubeConfig: api.kubeConfig(), log: silentLog, auth, batchMs: 5, retryMinMs: 20, retryMaxMs: 100, ...extra });
  port = await controller.start('127.0.0.1:0', insecure);
  await controller.whenSynced();
}

beforeEach(async () => {
  api = new FakeApiServer();
  await api.start();
  api.addNamespace('shop');
  api.addPod(makePod('shop', 'frontend-1', '10.2.0.1', { app: 'frontend' }, { serviceAccount: 'frontend' }));
  api.addPod(makePod('shop', 'cart-1', '10.2.0.2', { app: 'cart' }, { serviceAccount: 'cart' }));
  api.tokens.set('sidecar-token', 'system:serviceaccount:shop:frontend');
  api.tokens.set('user-token', 'jane@example.com');
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await controller?.close();
  await api.close();
});

describe('snapshot and changes', () => {
  it('gives a subscribing sidecar the whole map, then every change', async () => {
    await startController('none');
    const { client, directory } = subscribe();
    await waitUntil(() => client.status().state === 'synced', 'sync');
    expect(directory.lookup('10.2.0.1')).toEqual({ namespace: 'shop', pod: 'frontend-1', labels: { app: 'frontend' }, serviceAccount: 'frontend' });
    expect(directory.stale).toBe(false);
    api.addPod(makePod('shop', 'payments-1', '10.2.0.3', { app: 'payments' }, { serviceAccount: 'payments' }));
    await waitUntil(() => directory.lookup('10.2.0.3')?.pod === 'payments-1', 'the added pod');
    api.updatePod('shop', 'cart-1', (p) => (p.metadata.labels = { app: 'cart', version: 'v2' }));
    await waitUntil(() => directory.lookup('10.2.0.2')?.labels?.version === 'v2', 'the relabelled pod');
    api.deletePod('shop', 'frontend-1');
    await waitUntil(() => directory.lookup('10.2.0.1') === undefined, 'the deleted pod');
    expect(client.status()).toMatchObject({ state: 'synced', version: controller.index.version, workloads: 2, stale: false });
    expect(client.counts.snapshots).toBe(1);
  });

  it('waits for the first lists before answering, so a sidecar never takes an empty map for the cluster', async () => {
    api.failLists = 4;
    controller = new IdentityController({ kubeConfig: api.kubeConfig(), log: silentLog, auth: 'none', batchMs: 5, retryMinMs: 50, retryMaxMs: 50 });
    port = await controller.start('127.0.0.1:0', insecure);
    const { client, directory } = subscribe();
    await new Promise((r) => setTimeout(r, 60));
    expect(client.status().state).not.toBe('synced');
    await waitUntil(() => client.status().state === 'synced', 'sync after the lists', 5000);
    expect(directory.clusterSize).toBe(2);
  });

  it('sends a large map in parts and applies them together', async () => {
    for (let i = 0; i < 25; i++) api.addPod(makePod('bulk', `p-${i}`, `10.3.0.${i + 1}`, { app: 'bulk' }));
    await startController('none', { snapshotChunk: 4 });
    const { client, directory } = subscribe();
    const sizes: number[] = [];
    client.on('update', () => sizes.push(directory.clusterSize));
    await waitUntil(() => client.status().state === 'synced', 'sync');
    expect(sizes[0]).toBe(27); // never a partial map
    expect(directory.clusterLabelSets).toBe(3); // the 25 bulk pods share one label object
    expect(directory.lookup('10.3.0.1')!.labels).toBe(directory.lookup('10.3.0.25')!.labels);
  });
});

describe('authentication', () => {
  it('refuses a sidecar without a token or with a token that is not a service account', async () => {
    await startController('tokenreview');
    const none = subscribe();
    const user = subscribe({ token: 'user-token' });
    const bad = subscribe({ token: 'forged' });
    await waitUntil(() => [none, user, bad].every((s) => s.client.status().lastError !== undefined), 'three refusals');
    expect(none.client.status().lastError).toContain('no bearer token');
    expect(user.client.status().lastError).toContain('jane@example.com is not a service account');
    expect(bad.client.status().lastError).toContain('invalid bearer token');
    for (const s of [none, user, bad]) expect(s.client.status()).toMatchObject({ state: 'connecting', stale: true, workloads: 0 });
    expect(controller.server.stats.rejected).toBeGreaterThanOrEqual(3);
  });

  it('accepts a service-account token for the controller audience, and reviews it once across reconnects', async () => {
    await startController('tokenreview');
    const { client, directory } = subscribe({ token: 'sidecar-token' });
    await waitUntil(() => client.status().state === 'synced', 'sync');
    expect(directory.lookup('10.2.0.2')?.pod).toBe('cart-1');
    expect(api.tokenReviews).toEqual([{ token: 'sidecar-token', audiences: ['sidewall-controller'] }]);
    // Cut the stream: the client reconnects, the cached review answers.
    await restartServer();
    await waitUntil(() => client.counts.reconnects > 0 && client.status().state === 'synced', 'the resumed stream');
    expect(api.tokenReviews).toHaveLength(1);
  });
});

// A controller crash as the sidecars see it: every stream cut, then a new server on the same port
// with the same index (same epoch) — or a new controller (new epoch).
async function restartServer(): Promise<void> {
  controller.server.forceClose();
  const server = new IdentityServer({ index: controller.index, authenticator: controller.authenticator, log: silentLog, batchMs: 5 });
  (controller as { server: IdentityServer }).server = server;
  await server.listen(`127.0.0.1:${port}`, insecure);
  server.markReady();
}

describe('disconnect and resume', () => {
  it('keeps the last map while the controller is away, marks it stale, and resumes with only the changes', async () => {
    await startController('none');
    const { client, directory } = subscribe();
    await waitUntil(() => client.status().state === 'synced', 'sync');
    const server = controller.server;
    server.forceClose();
    await waitUntil(() => client.status().state === 'disconnected', 'the loss to be noticed');
    expect(directory.stale).toBe(true);
    expect(directory.lookup('10.2.0.1')?.pod).toBe('frontend-1'); // the last map stays
    expect(client.status().staleSeconds).toBeGreaterThanOrEqual(0);
    // Changes while the sidecar is away.
    api.deletePod('shop', 'frontend-1');
    api.addPod(makePod('shop', 'search-1', '10.2.0.7', { app: 'search' }));
    await waitUntil(() => controller.index.get('10.2.0.7') !== undefined, 'the controller to see the changes');
    const resumes = controller.server.stats.resumes;
    const replacement = new IdentityServer({ index: controller.index, authenticator: null, log: silentLog, batchMs: 5 });
    await replacement.listen(`127.0.0.1:${port}`, insecure);
    replacement.markReady();
    try {
      await waitUntil(() => client.status().state === 'synced', 'the resumed stream');
      expect(directory.stale).toBe(false);
      expect(directory.lookup('10.2.0.1')).toBeUndefined();
      expect(directory.lookup('10.2.0.7')?.pod).toBe('search-1');
      expect(client.counts.snapshots).toBe(1); // resumed by version: no second snapshot
      expect(replacement.stats.resumes).toBe(1);
      expect(replacement.stats.snapshots).toBe(0);
      expect(resumes).toBe(0);
    } finally {
      await replacement.close();
    }
  });

  it('takes a fresh snapshot from a restarted controller (another epoch), dropping what it no longer has', async () => {
    await startController('none');
    const { client, directory } = subscribe();
    await waitUntil(() => client.status().state === 'synced', 'sync');
    const firstEpoch = client.status().epoch;
    await controller.close();
    api.deletePod('shop', 'cart-1');
    controller = new IdentityController({ kubeConfig: api.kubeConfig(), log: silentLog, auth: 'none', batchMs: 5 });
    await controller.start(`127.0.0.1:${port}`, insecure);
    await waitUntil(() => client.status().state === 'synced' && client.status().epoch !== firstEpoch, 'the new epoch', 5000);
    expect(directory.lookup('10.2.0.2')).toBeUndefined();
    expect(directory.lookup('10.2.0.1')?.pod).toBe('frontend-1');
    expect(client.counts.snapshots).toBe(2);
  });

  it('falls back to a snapshot when the changes it missed are no longer in the change log', async () => {
    await startController('none', { changeLogCapacity: 4 });
    const { client, directory } = subscribe();
    await waitUntil(() => client.status().state === 'synced', 'sync');
    controller.server.forceClose();
    await waitUntil(() => client.status().state === 'disconnected', 'the loss');
    for (let i = 0; i < 6; i++) api.addPod(makePod('shop', `w-${i}`, `10.2.1.${i}`, {}));
    await waitUntil(() => controller.index.size === 8, 'the controller to see the changes');
    const replacement = new IdentityServer({ index: controller.index, authenticator: null, log: silentLog, batchMs: 5 });
    await replacement.listen(`127.0.0.1:${port}`, insecure);
    replacement.markReady();
    try {
      await waitUntil(() => client.status().state === 'synced', 'the new stream');
      expect(replacement.stats.snapshots).toBe(1);
      expect(directory.clusterSize).toBe(8);
    } finally {
      await replacement.close();
    }
  });

  it('reconnects when the stream goes silent (no heartbeat)', async () => {
    // A server that accepts the call and never answers stands for a half-open connection.
    const mute = new grpc.Server();
    const { identityServiceDefinition } = await import('../../../src/identity/identity-proto.js');
    let calls = 0;
    mute.addService(identityServiceDefinition(), { Subscribe: () => void calls++ });
    const mutePort = await new Promise<number>((resolve, reject) => mute.bindAsync('127.0.0.1:0', insecure, (e, p) => (e ? reject(e) : resolve(p))));
    try {
      const { client } = subscribe({ address: `127.0.0.1:${mutePort}`, heartbeatTimeoutMs: 100 });
      await waitUntil(() => calls >= 2, 'a second subscribe after the silence', 3000);
      expect(client.status().state).toBe('connecting');
    } finally {
      mute.forceShutdown();
    }
  });
});

describe('many subscribers', () => {
  it('brings 50 sidecars to the same version', async () => {
    await startController('none');
    const subs = Array.from({ length: 50 }, () => subscribe());
    await waitUntil(() => subs.every((s) => s.client.status().state === 'synced'), 'all synced');
    for (let i = 0; i < 20; i++) api.addPod(makePod('shop', `n-${i}`, `10.2.2.${i}`, { app: 'n' }));
    await waitUntil(() => subs.every((s) => s.client.status().version === controller.index.version && s.directory.clusterSize === 22), 'all at the latest version');
    expect(controller.server.subscriberCount).toBe(50);
  });
});

// Index unit behaviour that the stream relies on.
describe('change log', () => {
  it('answers changes since a version with the current state of each changed IP', () => {
    const index = new WorkloadIndex(8);
    index.applyPod(makePod('a', 'p1', '10.9.0.1', { x: '1' }) as never);
    const v1 = index.version;
    index.applyPod(makePod('a', 'p2', '10.9.0.2', { x: '2' }) as never);
    index.removePod('a', 'p1');
    expect(index.changesSince(v1)).toEqual({ upserts: [expect.objectContaining({ ip: '10.9.0.2' })], removed: ['10.9.0.1'], services: [], removedServices: [] });
    expect(index.changesSince(index.version)).toEqual({ upserts: [], removed: [], services: [], removedServices: [] });
    for (let i = 0; i < 10; i++) index.applyPod(makePod('a', `q${i}`, `10.9.1.${i}`, {}) as never);
    expect(index.changesSince(v1)).toBeUndefined();
    expect(index.changesSince(index.version + 1)).toBeUndefined();
  });
});
