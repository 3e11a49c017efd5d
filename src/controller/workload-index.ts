// The controller's pod IP → workload map, versioned so that sidecars can resume: every change of
// one IP's identity takes the next version and is remembered in a bounded change log; a sidecar
// that reconnects with a version still in the log gets only what changed since.
import { randomBytes } from 'node:crypto';
import type { ServiceMessage, WorkloadMessage } from '../identity/identity-proto.js';
import { LabelInterner, sameLabels } from '../identity/label-interner.js';

/** The pod fields the index reads (a pruned V1Pod; see prunePod in cluster-watch.ts). */
export interface PodView {
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> };
  spec?: { nodeName?: string; serviceAccountName?: string; hostNetwork?: boolean };
  status?: { phase?: string; podIP?: string; podIPs?: Array<{ ip?: string }> };
}

interface Held {
  /** namespace/name of the pod the IP belongs to. */
  owner: string;
  workload: WorkloadMessage;
}

export interface IndexChanges {
  upserts: WorkloadMessage[];
  removed: string[];
  services: ServiceMessage[];
  /** 'namespace/name' of deleted Services. */
  removedServices: string[];
}

/** Change-log keys of Services; IPs never start so. */
const SERVICE_PREFIX = 'svc:';

export type IndexListener = (version: number) => void;

/** The IPs a pod holds while it runs: none for hostNetwork pods (the node's IP) and finished pods. */
export function podAddresses(pod: PodView): string[] {
  if (pod.spec?.hostNetwork === true) return [];
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return [];
  const ips = new Set<string>();
  for (const entry of pod.status?.podIPs ?? []) if (entry.ip) ips.add(entry.ip);
  if (pod.status?.podIP) ips.add(pod.status.podIP);
  return [...ips];
}

export class WorkloadIndex {
  /** Random per process: a sidecar's version from another controller (or an earlier run) is not resumable here. */
  readonly epoch = randomBytes(8).toString('hex');
  private currentVersion = 0;
  private readonly byIp = new Map<string, Held>();
  private readonly ipsByPod = new Map<string, string[]>();
  private readonly labels = new LabelInterner();
  /** 'namespace/name' → the Service as streamed (fed by ServiceIndex). */
  private readonly services = new Map<string, ServiceMessage>();
  // Change log: the IP (or 'svc:namespace/name') changed at version v sits at (v - 1) % capacity.
  private readonly logIps: string[];
  private readonly listeners = new Set<IndexListener>();

  constructor(readonly changeLogCapacity = 65_536) {
    this.logIps = new Array<string>(changeLogCapacity);
  }

  get version(): number {
    return this.currentVersion;
  }

  get size(): number {
    return this.byIp.size;
  }

  get serviceCount(): number {
    return this.services.size;
  }

  getService(key: string): ServiceMessage | undefined {
    return this.services.get(key);
  }

  /** Adds or replaces a Service (the caller sends only real changes: each takes a version). */
  putService(key: string, service: ServiceMessage): void {
    this.services.set(key, service);
    this.record(SERVICE_PREFIX + key);
  }

  removeService(key: string): void {
    if (!this.services.delete(key)) return;
    this.record(SERVICE_PREFIX + key);
  }

  /** Every Service (with snapshot(), what a new subscriber gets). */
  serviceSnapshot(): ServiceMessage[] {
    return [...this.services.values()];
  }

  get distinctLabelSets(): number {
    return this.labels.size;
  }

  /** Called (synchronously) after each change with the new version. */
  onChange(listener: IndexListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get(ip: string): WorkloadMessage | undefined {
    return this.byIp.get(ip)?.workload;
  }

  /** Adds or updates a pod (informer add/update). */
  applyPod(pod: PodView): void {
    const namespace = pod.metadata?.namespace ?? '';
    const name = pod.metadata?.name ?? '';
    if (name === '') return;
    const owner = `${namespace}/${name}`;
    const ips = podAddresses(pod);
    const before = this.ipsByPod.get(owner);
    if (before !== undefined) for (const ip of before) if (!ips.includes(ip)) this.release(ip, owner);
    if (ips.length === 0) {
      this.ipsByPod.delete(owner);
      return;
    }
    this.ipsByPod.set(owner, ips);
    for (const ip of ips) {
      const held = this.byIp.get(ip);
      const serviceAccount = pod.spec?.serviceAccountName || 'default';
      const node = pod.spec?.nodeName;
      if (held !== undefined && held.owner === owner) {
        const w = held.workload;
        // Status updates (readiness, restarts) are most pod events; they change no identity.
        if (sameLabels(w.labels, pod.metadata?.labels) && w.serviceAccount === serviceAccount && w.node === node) continue;
      }
      if (held !== undefined) {
        if (held.owner !== owner) this.dropOwnerIp(held.owner, ip);
        this.labels.release(held.workload.labels!);
      }
      const workload: WorkloadMessage = { ip, namespace, pod: name, labels: this.labels.acquire(pod.metadata?.labels), serviceAccount };
      if (node) workload.node = node;
      this.byIp.set(ip, { owner, workload });
      this.record(ip);
    }
  }

  /** Removes a pod (informer delete). */
  removePod(namespace: string, name: string): void {
    const owner = `${namespace}/${name}`;
    const ips = this.ipsByPod.get(owner);
    if (ips === undefined) return;
    this.ipsByPod.delete(owner);
    for (const ip of ips) this.release(ip, owner);
  }

  /** Removes every pod of a deleted namespace (their own delete events may come later or never, after a relist). */
  removeNamespace(namespace: string): void {
    const prefix = `${namespace}/`;
    for (const owner of [...this.ipsByPod.keys()]) if (owner.startsWith(prefix)) this.removePod(namespace, owner.slice(prefix.length));
  }

  /** Every entry (a snapshot for a new subscriber). */
  snapshot(): WorkloadMessage[] {
    const out: WorkloadMessage[] = [];
    for (const held of this.byIp.values()) out.push(held.workload);
    return out;
  }

  /** What changed after `version`, or undefined when that is no longer known (then send a snapshot). */
  changesSince(version: number): IndexChanges | undefined {
    if (version > this.currentVersion || this.currentVersion - version > this.changeLogCapacity) return undefined;
    const seen = new Set<string>();
    for (let v = version + 1; v <= this.currentVersion; v++) seen.add(this.logIps[(v - 1) % this.changeLogCapacity]!);
    const changes: IndexChanges = { upserts: [], removed: [], services: [], removedServices: [] };
    for (const ip of seen) {
      if (ip.startsWith(SERVICE_PREFIX)) {
        const key = ip.slice(SERVICE_PREFIX.length);
        const service = this.services.get(key);
        if (service === undefined) changes.removedServices.push(key);
        else changes.services.push(service);
        continue;
      }
      const held = this.byIp.get(ip);
      if (held === undefined) changes.removed.push(ip);
      else changes.upserts.push(held.workload);
    }
    return changes;
  }

  private release(ip: string, owner: string): void {
    const held = this.byIp.get(ip);
    // The IP may already belong to a newer pod (IPs are reused quickly); that pod keeps it.
    if (held === undefined || held.owner !== owner) return;
    this.byIp.delete(ip);
    this.labels.release(held.workload.labels!);
    this.record(ip);
  }

  private dropOwnerIp(owner: string, ip: string): void {
    const ips = this.ipsByPod.get(owner);
    if (ips === undefined) return;
    const rest = ips.filter((x) => x !== ip);
    if (rest.length === 0) this.ipsByPod.delete(owner);
    else this.ipsByPod.set(owner, rest);
  }

  private record(ip: string): void {
    this.currentVersion++;
    this.logIps[(this.currentVersion - 1) % this.changeLogCapacity] = ip;
    for (const listener of this.listeners) listener(this.currentVersion);
  }
}
