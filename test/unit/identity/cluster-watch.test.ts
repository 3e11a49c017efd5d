// The controller's view of the cluster, against a local server speaking the Kubernetes
// list/watch protocol: lists, watch events, reconnects, bookmarks, 410 Gone and relists.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterWatch } from '../../../src/controller/cluster-watch.js';
import { WorkloadIndex } from '../../../src/controller/workload-index.js';
import { FakeApiServer, makePod } from './fake-apiserver.js';
import { silentLog, waitUntil } from './helpers.js';

let api: FakeApiServer;
let index: WorkloadIndex;
let watch: ClusterWatch;

async function startWatch(): Promise<void> {
  index = new WorkloadIndex();
  watch = new ClusterWatch({ kubeConfig: api.kubeConfig(), index, log: silentLog, retryMinMs: 20, retryMaxMs: 100 });
  const synced = new Promise<void>((resolve) => watch.once('synced', () => resolve()));
  void watch.start();
  await synced;
}

beforeEach(async () => {
  api = new FakeApiServer();
  await api.start();
  api.addNamespace('shop');
  api.addPod(makePod('shop', 'frontend-1', '10.1.0.1', { app: 'frontend' }, { serviceAccount: 'frontend', node: 'n1', ip6: 'fd00::1' }));
  api.addPod(makePod('shop', 'cart-1', '10.1.0.2', { app: 'cart' }, { serviceAccount: 'cart' }));
  api.addPod(makePod('kube-system', 'kube-proxy-x', '192.168.0.10', { app: 'kube-proxy' }, { hostNetwork: true }));
  api.addPod(makePod('shop', 'migrate-1', '10.1.0.3', { job: 'migrate' }, { phase: 'Succeeded' }));
  await startWatch();
});

afterEach(async () => {
  await watch.stop();
  await api.close();
});

describe('list', () => {
  it('maps every running pod IP (both families) to its workload', () => {
    expect(index.get('10.1.0.1')).toEqual({ ip: '10.1.0.1', namespace: 'shop', pod: 'frontend-1', labels: { app: 'frontend' }, serviceAccount: 'frontend', node: 'n1' });
    expect(index.get('fd00::1')).toMatchObject({ pod: 'frontend-1' });
    expect(index.get('10.1.0.2')).toMatchObject({ namespace: 'shop', pod: 'cart-1', serviceAccount: 'cart' });
  });

  it('leaves out host-network pods (their IP is the node) and finished pods (their IP is free again)', () => {
    expect(index.get('192.168.0.10')).toBeUndefined();
    expect(index.get('10.1.0.3')).toBeUndefined();
    expect(index.size).toBe(3);
  });

  it('asks for bookmarks on its watches', () => {
    expect(api.watchRequests.length).toBeGreaterThanOrEqual(2);
    expect(api.watchRequests.every((w) => w.allowWatchBookmarks)).toBe(true);
  });
});

describe('watch', () => {
  it('applies added, modified and deleted pods', async () => {
    api.addPod(makePod('shop', 'payments-1', '10.1.0.9', { app: 'payments' }, { serviceAccount: 'payments' }));
    await waitUntil(() => index.get('10.1.0.9') !== undefined, 'the new pod');
    api.updatePod('shop', 'payments-1', (p) => (p.metadata.labels = { app: 'payments', tier: 'backend' }));
    await waitUntil(() => index.get('10.1.0.9')?.labels?.tier === 'backend', 'the relabelled pod');
    api.updatePod('shop', 'payments-1', (p) => ((p.status as { phase: string }).phase = 'Failed'));
    await waitUntil(() => index.get('10.1.0.9') === undefined, 'the failed pod to give up its IP');
    api.deletePod('shop', 'cart-1');
    await waitUntil(() => index.get('10.1.0.2') === undefined, 'the deleted pod');
  });

  it('does not take a version for status changes that change no identity', async () => {
    const before = index.version;
    api.updatePod('shop', 'cart-1', (p) => ((p.status as Record<string, unknown>).conditions = [{ type: 'Ready', status: 'True' }]));
    api.addPod(makePod('shop', 'marker', '10.1.0.99', {}));
    await waitUntil(() => index.get('10.1.0.99') !== undefined, 'the marker pod');
    expect(index.version).toBe(before + 1);
  });

  it('keeps an IP with the newer pod when a terminating pod that held it is deleted later', async () => {
    api.addPod(makePod('shop', 'cart-2', '10.1.0.2', { app: 'cart', gen: '2' }, { serviceAccount: 'cart' }));
    await waitUntil(() => index.get('10.1.0.2')?.pod === 'cart-2', 'the reused IP');
    api.deletePod('shop', 'cart-1');
    api.addPod(makePod('shop', 'marker', '10.1.0.99', {}));
    await waitUntil(() => index.get('10.1.0.99') !== undefined, 'the marker pod');
    expect(index.get('10.1.0.2')?.pod).toBe('cart-2');
  });

  it('removes the pods of a deleted namespace', async () => {
    api.deleteNamespace('shop', false);
    await waitUntil(() => index.get('10.1.0.1') === undefined && index.get('10.1.0.2') === undefined, 'the namespace pods to go');
  });

  it('reconnects a dropped watch from its resourceVersion without listing again', async () => {
    const rv = String(api.resourceVersion);
    api.dropWatches();
    await waitUntil(() => api.openWatches === 2, 'the watches to reconnect');
    const resumed = api.watchRequests.filter((w) => w.kind === 'pods').at(-1)!;
    expect(resumed.resourceVersion).toBe(rv);
    api.addPod(makePod('shop', 'late', '10.1.0.50', { app: 'late' }));
    await waitUntil(() => index.get('10.1.0.50') !== undefined, 'a pod added after the reconnect');
    expect(api.lists.pods).toBe(1);
  });

  it('resumes from the last bookmark, not from the last object event', async () => {
    api.addNamespace('other'); // moves the resourceVersion on without any pod event
    api.addNamespace('other2');
    await waitUntil(() => watch.state().namespaces.resourceVersion === String(api.resourceVersion), 'the namespace events');
    const podRvBefore = watch.state().pods.resourceVersion;
    const bookmarkRv = String(api.bookmark());
    expect(bookmarkRv).not.toBe(podRvBefore);
    await waitUntil(() => watch.state().pods.resourceVersion === bookmarkRv, 'the bookmark to be taken');
    expect(watch.state().pods.bookmarks).toBeGreaterThan(0);
    api.dropWatches();
    await waitUntil(() => api.openWatches === 2, 'the watches to reconnect');
    expect(api.watchRequests.filter((w) => w.kind === 'pods').at(-1)!.resourceVersion).toBe(bookmarkRv);
  });

  for (const goneAs of ['event', 'status'] as const) {
    it(`relists after 410 Gone (as ${goneAs === 'event' ? 'an ERROR event' : 'an HTTP status'}) and drops what was deleted meanwhile`, async () => {
      api.goneAs = goneAs;
      // Changes the controller misses: its watches are cut, then history is compacted.
      api.dropWatches();
      api.deletePod('shop', 'cart-1');
      api.addPod(makePod('shop', 'search-1', '10.1.0.60', { app: 'search' }));
      api.compact();
      await waitUntil(() => api.lists.pods === 2, 'a relist of pods');
      await waitUntil(() => index.get('10.1.0.60') !== undefined && index.get('10.1.0.2') === undefined, 'the relisted state');
      expect(api.gone).toContain('pods');
      expect(index.get('10.1.0.1')).toMatchObject({ pod: 'frontend-1' });
      api.addPod(makePod('shop', 'after', '10.1.0.61', {}));
      await waitUntil(() => index.get('10.1.0.61') !== undefined, 'events after the relist');
    });
  }
});

describe('start-up', () => {
  it('retries the first list until the API server answers', async () => {
    await watch.stop();
    api.failLists = 3;
    const before = api.lists.pods;
    await startWatch();
    expect(watch.synced).toBe(true);
    expect(api.lists.pods).toBe(before + 1);
    expect(watch.state().pods.errors + watch.state().namespaces.errors).toBeGreaterThanOrEqual(3);
    expect(index.size).toBe(3);
  });
});
