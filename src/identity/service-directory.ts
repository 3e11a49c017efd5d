// Cluster IP → Kubernetes Service, so that an egress call to a Service is a call to its workloads
// (issue 20). The app dials the cluster IP; kube-proxy (or its replacement) turns it into a pod IP
// on the node, after the packet left the pod, so the sidecar only ever sees the cluster IP.
// Two layers, looked up in this order:
//   1. the static `services` list of the config (the demo, clusters without the controller);
//   2. the Services streamed by the controller (IdentityClient), replaced by a snapshot, patched
//      by changes.
// A Service's ready endpoints are pod IPs; their workloads come from the identity map
// (WorkloadDirectory), so a relabelled pod changes what its Services' rules see at once.
// Headless and ExternalName Services have no cluster IP and never match here: a headless name
// resolves to the pod IPs themselves (identities apply directly) and an ExternalName to a name
// outside the cluster (DNS and CIDR rules apply).
import { isIP } from 'node:net';
import type { ServiceDestination, ServiceEndpoint, Workload } from '../policy/index.js';

export interface ServicePortEntry {
  port: number;
  /** The endpoints' port (a number, or a container port's name); defaults to `port`. */
  targetPort?: number | string;
  protocol?: string;
  name?: string;
}

/** One Service as the config lists it and the controller streams it. */
export interface ServiceEntry {
  namespace: string;
  name: string;
  /** Both families when dual-stack; empty for headless ('None') and ExternalName Services. */
  clusterIPs: string[];
  ports: ServicePortEntry[];
  selector?: Record<string, string>;
  /** ClusterIP, NodePort, LoadBalancer, ExternalName. */
  type?: string;
  externalName?: string;
  /**
   * Ready endpoint IPs (from the Service's EndpointSlices). Absent in a static entry: the
   * endpoints are the known workloads of the Service's namespace its selector matches.
   */
  endpoints?: string[];
}

/** The Service at a cluster IP, with its ready endpoints and the workload they have in common. */
export interface ServiceLookup {
  service: ServiceDestination;
  /** What every ready endpoint has in common, or undefined (none ready, or one unknown). */
  workload: Workload | undefined;
  entry: ServiceEntry;
}

export type WorkloadLookup = (ip: string) => Workload | undefined;
export type WorkloadScan = (namespace: string) => Iterable<[string, Workload]>;

interface Cached {
  generation: number;
  result: ServiceLookup;
}

export function serviceKey(entry: { namespace: string; name: string }): string {
  return `${entry.namespace}/${entry.name}`;
}

/** '::ffff:10.96.0.1' → '10.96.0.1' (a v4 destination on a dual-stack socket). */
export function plainIp(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

/** The entry's cluster IPs that are addresses ('None' marks a headless Service). */
function clusterAddresses(entry: ServiceEntry): string[] {
  return entry.clusterIPs.filter((ip) => isIP(ip) !== 0).map(plainIp);
}

function selects(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  const keys = Object.keys(selector);
  // An empty selector selects nothing in a Service (Kubernetes makes no endpoints for it).
  if (keys.length === 0 || labels === undefined) return false;
  for (const key of keys) if (labels[key] !== selector[key]) return false;
  return true;
}

/** What all workloads share; undefined for an empty list or one unknown workload. */
export function commonWorkload(endpoints: readonly ServiceEndpoint[]): Workload | undefined {
  if (endpoints.length === 0) return undefined;
  let namespace: string | undefined;
  let serviceAccount: string | undefined;
  let labels: Record<string, string> | undefined;
  for (let i = 0; i < endpoints.length; i++) {
    const w = endpoints[i]!.workload;
    if (w === undefined) return undefined;
    if (i === 0) {
      namespace = w.namespace;
      serviceAccount = w.serviceAccount;
      labels = { ...(w.labels ?? {}) };
      continue;
    }
    if (namespace !== w.namespace) namespace = undefined;
    if (serviceAccount !== w.serviceAccount) serviceAccount = undefined;
    for (const key of Object.keys(labels!)) if (w.labels?.[key] !== labels![key]) delete labels![key];
  }
  const common: Workload = { labels: labels! };
  if (namespace !== undefined) common.namespace = namespace;
  if (serviceAccount !== undefined) common.serviceAccount = serviceAccount;
  if (endpoints.length === 1 && endpoints[0]!.workload!.pod !== undefined) common.pod = endpoints[0]!.workload!.pod;
  return Object.freeze(common);
}

export class ServiceDirectory {
  private readonly configured = new Map<string, ServiceEntry>();
  private readonly configuredByIp = new Map<string, ServiceEntry>();
  private cluster = new Map<string, ServiceEntry>();
  private clusterByIp = new Map<string, ServiceEntry>();
  private readonly cache = new Map<ServiceEntry, Cached>();
  /** Bumped by every change to the Services or the identity map: cached lookups are redone. */
  private generation = 0;

  constructor(
    entries: readonly ServiceEntry[],
    private readonly identify: WorkloadLookup,
    private readonly scan: WorkloadScan,
  ) {
    for (const entry of entries) {
      this.configured.set(serviceKey(entry), entry);
      for (const ip of clusterAddresses(entry)) this.configuredByIp.set(ip, entry);
    }
  }

  /** Services of the cluster layer. */
  get clusterSize(): number {
    return this.cluster.size;
  }

  get size(): number {
    return this.configured.size + this.cluster.size;
  }

  /** The identity map changed: endpoints' workloads may have. */
  invalidate(): void {
    this.generation++;
    if (this.cache.size > 4096) this.cache.clear();
  }

  /** By namespace/name (static first). */
  get(namespace: string, name: string): ServiceEntry | undefined {
    const key = `${namespace}/${name}`;
    return this.configured.get(key) ?? this.cluster.get(key);
  }

  /** The Service whose cluster IP this is, or undefined. */
  lookup(ip: string): ServiceLookup | undefined {
    const plain = plainIp(ip);
    const entry = this.configuredByIp.get(plain) ?? this.clusterByIp.get(plain);
    if (entry === undefined) return undefined;
    const cached = this.cache.get(entry);
    if (cached !== undefined && cached.generation === this.generation) return cached.result;
    const endpoints: ServiceEndpoint[] = [];
    if (entry.endpoints !== undefined) {
      for (const endpointIp of entry.endpoints) {
        const workload = this.identify(endpointIp);
        endpoints.push(workload === undefined ? { ip: endpointIp } : { ip: endpointIp, workload });
      }
    } else if (entry.selector !== undefined) {
      for (const [endpointIp, workload] of this.scan(entry.namespace)) {
        if (selects(entry.selector, workload.labels)) endpoints.push({ ip: endpointIp, workload });
      }
    }
    const service: ServiceDestination = { namespace: entry.namespace, name: entry.name };
    // Rules read the endpoints; records (JSON) must carry only namespace and name.
    Object.defineProperty(service, 'endpoints', { value: Object.freeze(endpoints), enumerable: false });
    const result: ServiceLookup = { service: Object.freeze(service), workload: commonWorkload(endpoints), entry };
    this.cache.set(entry, { generation: this.generation, result });
    return result;
  }

  /** Replaces the cluster layer (a snapshot from the controller). */
  replaceCluster(entries: Iterable<ServiceEntry>): void {
    this.cluster = new Map();
    this.clusterByIp = new Map();
    this.cache.clear();
    for (const entry of entries) this.putCluster(entry);
    this.generation++;
  }

  /** Applies changes to the cluster layer; `removed` are 'namespace/name' keys. */
  patchCluster(upserts: Iterable<ServiceEntry>, removed: Iterable<string>): void {
    for (const key of removed) this.dropCluster(key);
    for (const entry of upserts) {
      this.dropCluster(serviceKey(entry));
      this.putCluster(entry);
    }
    this.generation++;
  }

  /** Every Service (static first), e.g. for `policy test` and the learner. */
  *entries(): IterableIterator<ServiceEntry> {
    yield* this.configured.values();
    for (const [key, entry] of this.cluster) if (!this.configured.has(key)) yield entry;
  }

  private putCluster(entry: ServiceEntry): void {
    this.cluster.set(serviceKey(entry), entry);
    for (const ip of clusterAddresses(entry)) this.clusterByIp.set(ip, entry);
  }

  private dropCluster(key: string): void {
    const old = this.cluster.get(key);
    if (old === undefined) return;
    this.cluster.delete(key);
    this.cache.delete(old);
    for (const ip of clusterAddresses(old)) if (this.clusterByIp.get(ip) === old) this.clusterByIp.delete(ip);
  }
}
