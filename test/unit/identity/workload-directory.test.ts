// The sidecar's identity lookup: its own addresses first, then the config's static identities,
// then the controller's map; the stale flag; label sets shared and released.
import { describe, expect, it } from 'vitest';
import { WorkloadDirectory } from '../../../src/identity/workload-directory.js';

describe('WorkloadDirectory', () => {
  it('answers its own pod first, then static identities, then the controller map', () => {
    const d = new WorkloadDirectory([{ ip: '10.0.0.5', namespace: 'ext', pod: 'db', labels: { app: 'db' } }]);
    d.replaceCluster([
      { ip: '10.0.0.5', namespace: 'shop', pod: 'old', labels: { app: 'x' } },
      { ip: '10.0.0.6', namespace: 'shop', pod: 'cart-0', labels: { app: 'cart' }, serviceAccount: 'cart' },
      { ip: '10.0.0.7', namespace: 'shop', pod: 'me-from-controller', labels: {} },
    ]);
    d.setSelf(['10.0.0.7', '127.0.0.1'], { namespace: 'shop', pod: 'me', labels: { app: 'me' } });
    expect(d.lookup('10.0.0.5')?.pod).toBe('db');
    expect(d.lookup('10.0.0.6')).toEqual({ namespace: 'shop', pod: 'cart-0', labels: { app: 'cart' }, serviceAccount: 'cart' });
    expect(d.lookup('10.0.0.7')?.pod).toBe('me');
    expect(d.lookup('127.0.0.1')?.pod).toBe('me');
    expect(d.lookup('10.0.0.8')).toBeUndefined();
  });

  it('patches and replaces the controller map, keeping only record fields (no node)', () => {
    const d = new WorkloadDirectory();
    d.replaceCluster([{ ip: '10.1.0.1', namespace: 'a', pod: 'p1', labels: { app: 'w' } }]);
    d.patchCluster([{ ip: '10.1.0.2', namespace: 'a', pod: 'p2', labels: { app: 'w' }, node: 'n1' } as never], ['10.1.0.1']);
    expect(d.lookup('10.1.0.1')).toBeUndefined();
    expect(d.lookup('10.1.0.2')).toEqual({ namespace: 'a', pod: 'p2', labels: { app: 'w' } });
    expect(Object.isFrozen(d.lookup('10.1.0.2'))).toBe(true);
    d.replaceCluster([{ ip: '10.1.0.3', namespace: 'a', pod: 'p3' }]);
    expect(d.lookup('10.1.0.2')).toBeUndefined();
    expect(d.clusterSize).toBe(1);
  });

  it('shares one label object per label set and releases sets no pod uses', () => {
    const d = new WorkloadDirectory();
    d.replaceCluster(Array.from({ length: 100 }, (_, i) => ({ ip: `10.2.0.${i}`, namespace: 'a', pod: `p${i}`, labels: i % 2 ? { app: 'odd', tier: 'x' } : { tier: 'x', app: 'even' } })));
    expect(d.clusterLabelSets).toBe(2);
    expect(d.lookup('10.2.0.1')!.labels).toBe(d.lookup('10.2.0.3')!.labels);
    d.patchCluster([], Array.from({ length: 50 }, (_, i) => `10.2.0.${i * 2}`));
    expect(d.clusterLabelSets).toBe(1);
    d.replaceCluster([]);
    expect(d.clusterLabelSets).toBe(0);
  });

  it('is stale from the moment it is marked until it is marked in sync', () => {
    const d = new WorkloadDirectory();
    expect(d.stale).toBe(false);
    d.setStale(true, 1000);
    d.setStale(true, 5000);
    expect(d.staleSince).toBe(1000);
    d.setStale(false);
    expect(d.stale).toBe(false);
    expect(d.staleSince).toBeNull();
  });
});
