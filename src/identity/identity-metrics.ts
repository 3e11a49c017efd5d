// Prometheus metrics of the identity subscription, on the sidecar's registry (src/metrics): read
// from the client's status when /metrics is scraped, so the stream itself never touches them.
import { Gauge, registry } from '../metrics/index.js';
import type { IdentityClient } from './identity-client.js';

let source: IdentityClient | null = null;

function read<T>(pick: (client: IdentityClient) => T, fallback: T): T {
  return source === null ? fallback : pick(source);
}

const gauges = {
  connected: new Gauge({
    name: 'sidewall_identity_controller_connected',
    help: '1 while the sidecar is in sync with the identity controller, else 0',
    registers: [registry],
    collect() {
      this.set(read((c) => (c.status().state === 'synced' ? 1 : 0), 0));
    },
  }),
  stale: new Gauge({
    name: 'sidewall_identity_stale_seconds',
    help: 'How long the workload identity map may have been out of date (0 while in sync)',
    registers: [registry],
    collect() {
      this.set(read((c) => c.status().staleSeconds ?? 0, 0));
    },
  }),
  workloads: new Gauge({
    name: 'sidewall_identity_workloads',
    help: 'Pod IPs known from the identity controller',
    registers: [registry],
    collect() {
      this.set(read((c) => c.status().workloads, 0));
    },
  }),
  services: new Gauge({
    name: 'sidewall_identity_services',
    help: 'Kubernetes Services (cluster IP map) known from the identity controller',
    registers: [registry],
    collect() {
      this.set(read((c) => c.status().services, 0));
    },
  }),
  version: new Gauge({
    name: 'sidewall_identity_version',
    help: 'Version of the identity map last applied (resets when the controller restarts)',
    registers: [registry],
    collect() {
      this.set(read((c) => c.status().version, 0));
    },
  }),
  updates: new Gauge<'kind'>({
    name: 'sidewall_identity_updates_received',
    help: 'Updates received from the identity controller, by kind (snapshot, changes, heartbeat, reconnect)',
    labelNames: ['kind'] as const,
    registers: [registry],
    collect() {
      const counts = read((c) => c.counts, { snapshots: 0, changes: 0, heartbeats: 0, reconnects: 0 });
      this.set({ kind: 'snapshot' }, counts.snapshots);
      this.set({ kind: 'changes' }, counts.changes);
      this.set({ kind: 'heartbeat' }, counts.heartbeats);
      this.set({ kind: 'reconnect' }, counts.reconnects);
    },
  }),
};
void gauges;

/** Publishes this client's state in /metrics (one client per sidecar process). */
export function exposeIdentityMetrics(client: IdentityClient): void {
  source = client;
}
