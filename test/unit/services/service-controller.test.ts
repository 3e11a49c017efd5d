// The controller's Services and EndpointSlices (issue 20) against the fake list/watch API server,
// streamed to a sidecar's WorkloadDirectory: adds, endpoint churn, selector changes, headless,
// ExternalName and selector-less Services, 410 relists, and a sidecar resuming by version.
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IdentityController } from '../../../src/controller/identity-controller.js';
import { IdentityClient } from '../../../src/identity/identity-client.js';
import { WorkloadDirectory } from '../../../src/identity/workload-directory.js';
import { FakeApiServer, makePod, makeService, makeSlice } from '../identity/fake-apiserver.js';
import { silentLog, waitUntil } from '../identity/helpers.js';

let api: FakeApiServer;
let controller: IdentityController;
let client: IdentityClient;
let directory: WorkloadDirectory;

function endpointsOf(ip: string): string[] | undefined {
  return directory.services.lookup(ip)?.service.endpoints?.map((e) => e.ip).sort();
}

beforeEach(async () => {
  api = new FakeApiServer();
  await api.start();
  api.addNamespace('shop');
  api.addPod(makePod('shop', 'payments-1', '10.3.0.1', { app: 'payments', version: 'v1' }, { serviceAccount: 'payments' }));
  api.addPod(makePod('shop', 'payments-2', '10.3.0.2', { app: 'payments', version: 'v1' }, { serviceAccount: 'payments' }));
  api.putObject(makeService('shop', 'payments', ['10.96.3.1', 'fd00:96::3:1'], [{ port: 80, targetPort: 8080, name: 'http' }], { app: 'payments' }));
  api.putObject(makeSlice('shop', 'payments-abc', 'payments', [['10.3.0.1', true], ['10.3.0.2', true]]));
  controller = new IdentityController({ kubeConfig: api.kubeConfig(), log: silentLog, auth: 'none', batchMs: 5, retryMinMs: 20, retryMaxMs: 100 });
  const port = await controller.start('127.0.0.1:0', grpc.ServerCredentials.createInsecure());
  await controller.whenSynced();
  directory = new WorkloadDirectory();
  client = new IdentityClient({ address: `127.0.0.1:${port}`, directory, client: 'test/app-0', log: silentLog, retryMinMs: 20, retryMaxMs: 100 });
  client.start();
  await waitUntil(() => endpointsOf('10.96.3.1')?.length === 2, 'the Service in the sidecar');
});

afterEach(async () => {
  client.close();
  await controller.close();
  await api.close();
});

describe('Services from the controller', () => {
  it('streams cluster IPs of both families, ports, selector and ready endpoints; the sidecar resolves their workloads', () => {
    const found = directory.services.lookup('fd00:96::3:1')!;
    expect(found.entry).toMatchObject({ namespace: 'shop', name: 'payments', clusterIPs: ['10.96.3.1', 'fd00:96::3:1'], ports: [{ port: 80, targetPort: 8080, name: 'http', protocol: 'TCP' }], selector: { app: 'payments' }, type: 'ClusterIP' });
    expect(found.workload).toEqual({ namespace: 'shop', serviceAccount: 'payments', labels: { app: 'payments', version: 'v1' } });
    expect(client.status().services).toBe(1);
    expect(controller.status()).toMatchObject({ services: 1, endpointSlices: 1 });
  });

  it('follows endpoint churn: not ready, serving while terminating, new slices, deleted slices', async () => {
    api.updateObject('endpointslices', 'shop', 'payments-abc', (s) => (s.endpoints = makeSlice('shop', 'x', 'payments', [['10.3.0.1', true], ['10.3.0.2', false]]).endpoints));
    await waitUntil(() => endpointsOf('10.96.3.1')?.join() === '10.3.0.1', 'the unready endpoint to go');
    api.updateObject('endpointslices', 'shop', 'payments-abc', (s) => (s.endpoints = makeSlice('shop', 'x', 'payments', [['10.3.0.1', true], ['10.3.0.2', false, { serving: true, terminating: true }]]).endpoints));
    await waitUntil(() => endpointsOf('10.96.3.1')?.length === 2, 'a serving, terminating endpoint (kube-proxy may still use it)');
    api.addPod(makePod('shop', 'payments-3', '10.3.0.3', { app: 'payments', version: 'v2' }, { serviceAccount: 'payments' }));
    api.putObject(makeSlice('shop', 'payments-def', 'payments', [['10.3.0.3', undefined]]));
    await waitUntil(() => endpointsOf('10.96.3.1')?.length === 3, 'a second slice (ready unset means ready)');
    // The rollout's new version differs: the shared labels shrink to what all three carry.
    expect(directory.services.lookup('10.96.3.1')!.workload?.labels).toEqual({ app: 'payments' });
    api.deleteObject('endpointslices', 'shop', 'payments-abc');
    await waitUntil(() => endpointsOf('10.96.3.1')?.join() === '10.3.0.3', 'the deleted slice');
    expect(directory.services.lookup('10.96.3.1')!.workload).toMatchObject({ pod: 'payments-3', labels: { app: 'payments', version: 'v2' } });
  });

  it('follows a relabelled endpoint pod at once (the workload comes from the pod map)', async () => {
    api.updatePod('shop', 'payments-2', (p) => (p.metadata.labels = { app: 'payments', version: 'v2' }));
    await waitUntil(() => directory.services.lookup('10.96.3.1')!.workload?.labels?.version === undefined, 'the shared labels to lose version');
  });

  it('follows selector changes and Service deletion', async () => {
    api.updateObject('services', 'shop', 'payments', (s) => ((s.spec as { selector: unknown }).selector = { app: 'payments', track: 'stable' }));
    await waitUntil(() => directory.services.lookup('10.96.3.1')?.entry.selector?.track === 'stable', 'the new selector');
    api.deleteObject('services', 'shop', 'payments');
    await waitUntil(() => directory.services.lookup('10.96.3.1') === undefined, 'the deleted Service');
    expect(controller.status().services).toBe(0);
  });

  it('headless, ExternalName and selector-less Services (manual EndpointSlices)', async () => {
    api.putObject(makeService('shop', 'db', [], [{ port: 5432 }], { app: 'db' }));
    api.putObject(makeService('shop', 'bank', [], [{ port: 443 }], undefined, { type: 'ExternalName', externalName: 'api.bank.example' }));
    api.putObject(makeService('shop', 'legacy', ['10.96.3.9'], [{ port: 3306 }]));
    api.putObject(makeSlice('shop', 'legacy-1', 'legacy', [['192.0.2.10', true]]));
    api.putObject(makeSlice('shop', 'orphan', undefined, [['192.0.2.11', true]]));
    await waitUntil(() => directory.services.clusterSize === 4 && endpointsOf('10.96.3.9')?.length === 1, 'the three Services');
    // Headless and ExternalName have no cluster IP: nothing to look up by address.
    expect([...directory.services.entries()].find((e) => e.name === 'db')).toMatchObject({ clusterIPs: [] });
    expect([...directory.services.entries()].find((e) => e.name === 'bank')).toMatchObject({ clusterIPs: [], type: 'ExternalName', externalName: 'api.bank.example' });
    // A selector-less Service's endpoint outside the pod map: the Service is known, its workload is not.
    const legacy = directory.services.lookup('10.96.3.9')!;
    expect(legacy.service).toEqual({ namespace: 'shop', name: 'legacy' });
    expect(legacy.workload).toBeUndefined();
    expect(legacy.entry.selector).toBeUndefined();
  });

  it('relists after 410 Gone: Services and slices that changed or vanished meanwhile are right again', async () => {
    const lists = api.lists.services;
    api.dropWatches();
    api.deleteObject('endpointslices', 'shop', 'payments-abc');
    api.putObject(makeService('shop', 'cart', ['10.96.3.2'], [{ port: 80 }], { app: 'cart' }));
    api.compact();
    await waitUntil(() => directory.services.lookup('10.96.3.2') !== undefined && endpointsOf('10.96.3.1')?.length === 0, 'the state after the relist');
    expect(api.lists.services).toBeGreaterThan(lists);
    expect(api.gone).toContain('services');
  });

  it('a new Service reaches a subscribed sidecar as a change, not a new snapshot', async () => {
    const before = client.counts.snapshots;
    api.putObject(makeService('shop', 'cart', ['10.96.3.2'], [{ port: 80 }], { app: 'cart' }));
    await waitUntil(() => directory.services.lookup('10.96.3.2') !== undefined, 'the new Service as a change');
    expect(client.counts.snapshots).toBe(before);
  });
});
