// IP → workload identity, for rule matching (`peer` by namespace, labels, service account) and
// for the `workload` fields of flow records. Sources: the static `identities` list of the config
// (the demo, clusters without the controller) and the pod's own identity for its own addresses.
import type { Workload } from '../policy/index.js';

export interface IdentityEntryLike {
  ip: string;
  namespace?: string;
  pod?: string;
  labels?: Record<string, string>;
  serviceAccount?: string;
}

export class WorkloadDirectory {
  private readonly byIp = new Map<string, Workload>();

  constructor(entries: readonly IdentityEntryLike[] = []) {
    for (const { ip, ...workload } of entries) this.byIp.set(ip, Object.freeze(workload));
  }

  /** Registers the protected pod's own identity for its addresses (loopback included). */
  setSelf(ips: readonly string[], workload: Workload): void {
    const frozen = Object.freeze(workload);
    for (const ip of ips) this.byIp.set(ip, frozen);
  }

  lookup(ip: string): Workload | undefined {
    return this.byIp.get(ip);
  }
}
