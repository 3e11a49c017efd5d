// IP → workload identity, for rule matching (`peer` by namespace, labels, service account) and
// for the `workload` fields of flow records. Three layers, looked up in this order:
//   1. the protected pod's own identity for its own addresses (setSelf);
//   2. the static `identities` list of the config (the demo, clusters without the controller,
//      and addresses the operator names on purpose);
//   3. the cluster's map streamed by the controller (IdentityClient), replaced by a snapshot and
//      patched by changes.
// While the controller is unreachable the third layer keeps its last content and the directory
// is `stale`: identities it answers may be out of date (a pod IP reused by another workload).
import type { Endpoint, Workload } from '../policy/index.js';
import { LabelInterner } from './label-interner.js';
import { ServiceDirectory, type ServiceEntry } from './service-directory.js';

export interface IdentityEntryLike {
  ip: string;
  namespace?: string;
  pod?: string;
  labels?: Record<string, string>;
  serviceAccount?: string;
}

export class WorkloadDirectory {
  private readonly self = new Map<string, Workload>();
  private readonly configured = new Map<string, Workload>();
  private cluster = new Map<string, Workload>();
  private readonly labels = new LabelInterner();
  private staleAt: number | null = null;

  /** Cluster IP → Service (static `services`, then the controller's); endpoints resolved here. */
  readonly services: ServiceDirectory;

  constructor(entries: readonly IdentityEntryLike[] = [], services: readonly ServiceEntry[] = []) {
    for (const { ip, ...workload } of entries) this.configured.set(ip, Object.freeze(workload));
    this.services = new ServiceDirectory(services, (ip) => this.lookup(ip), (namespace) => this.inNamespace(namespace));
  }

  /**
   * An endpoint with what is known of it: the workload at `ip`, or, when `ip` is a Service's
   * cluster IP and `withService` (egress and intra destinations; a source is never a cluster
   * IP), the Service and the workload its ready endpoints share.
   */
  describe(ip: string, port: number, withService = false): Endpoint {
    const workload = this.lookup(ip);
    if (workload !== undefined) return { ip, port, workload };
    const found = withService ? this.services.lookup(ip) : undefined;
    if (found === undefined) return { ip, port };
    return found.workload === undefined ? { ip, port, service: found.service } : { ip, port, workload: found.workload, service: found.service };
  }

  /** Known workloads of a namespace (static, then cluster; the pod's own addresses too). */
  private *inNamespace(namespace: string): IterableIterator<[string, Workload]> {
    const seen = new Set<string>();
    for (const layer of [this.self, this.configured, this.cluster]) {
      for (const [ip, workload] of layer) {
        if (workload.namespace !== namespace || seen.has(ip)) continue;
        seen.add(ip);
        yield [ip, workload];
      }
    }
  }

  /** Registers the protected pod's own identity for its addresses (loopback included). */
  setSelf(ips: readonly string[], workload: Workload): void {
    const frozen = Object.freeze(workload);
    for (const ip of ips) this.self.set(ip, frozen);
    this.services.invalidate();
  }

  lookup(ip: string): Workload | undefined {
    return this.self.get(ip) ?? this.configured.get(ip) ?? this.cluster.get(ip);
  }

  /** True while the cluster layer may be out of date (the controller is configured but not in sync). */
  get stale(): boolean {
    return this.staleAt !== null;
  }

  /** Since when (ms since the epoch) the cluster layer is stale, or null. */
  get staleSince(): number | null {
    return this.staleAt;
  }

  setStale(stale: boolean, now = Date.now()): void {
    if (!stale) this.staleAt = null;
    else if (this.staleAt === null) this.staleAt = now;
  }

  /** Entries of the cluster layer. */
  get clusterSize(): number {
    return this.cluster.size;
  }

  /** Distinct label sets shared by the cluster layer's entries. */
  get clusterLabelSets(): number {
    return this.labels.size;
  }

  /** Replaces the cluster layer (a snapshot from the controller). */
  replaceCluster(entries: Iterable<IdentityEntryLike>): void {
    for (const workload of this.cluster.values()) if (workload.labels !== undefined) this.labels.release(workload.labels);
    this.cluster = new Map();
    for (const entry of entries) this.cluster.set(entry.ip, this.freeze(entry));
    this.services.invalidate();
  }

  /** Applies changes to the cluster layer. */
  patchCluster(upserts: Iterable<IdentityEntryLike>, removed: Iterable<string>): void {
    for (const ip of removed) this.dropCluster(ip);
    for (const entry of upserts) {
      this.dropCluster(entry.ip);
      this.cluster.set(entry.ip, this.freeze(entry));
    }
    this.services.invalidate();
  }

  private dropCluster(ip: string): void {
    const old = this.cluster.get(ip);
    if (old === undefined) return;
    this.cluster.delete(ip);
    if (old.labels !== undefined) this.labels.release(old.labels);
  }

  // Only the fields a flow record's `workload` has (schema/flow-record.schema.json); labels shared.
  private freeze(entry: IdentityEntryLike): Workload {
    const workload: Workload = { labels: this.labels.acquire(entry.labels) as Record<string, string> };
    if (entry.namespace) workload.namespace = entry.namespace;
    if (entry.pod) workload.pod = entry.pod;
    if (entry.serviceAccount) workload.serviceAccount = entry.serviceAccount;
    return Object.freeze(workload);
  }
}
