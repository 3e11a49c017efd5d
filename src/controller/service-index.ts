// Services and their EndpointSlices (discovery.k8s.io/v1), joined into the Service messages the
// identity stream carries (issue 20). A slice belongs to the Service its label
// `kubernetes.io/service-name` names (the EndpointSlice controller sets it; so must whoever writes
// the slices of a Service without a selector). A Service's endpoints are the addresses, over all
// its slices, that kube-proxy may send to: ready ones, and serving ones while they terminate
// (kube-proxy falls back to those when none is ready). A rule on a Service's labels is checked
// against all of them, so counting one too many is the safe side. FQDN slices (deprecated) carry
// no pod IPs and are left out. Only real changes reach the WorkloadIndex, so an endpoint's
// readiness flapping between two states that give the same address list costs no version.
import type { ServiceMessage, ServicePortMessage } from '../identity/identity-proto.js';
import type { WorkloadIndex } from './workload-index.js';

/** The Service fields read here (a pruned V1Service). */
export interface ServiceView {
  metadata?: { name?: string; namespace?: string };
  spec?: {
    type?: string;
    clusterIP?: string;
    clusterIPs?: string[];
    externalName?: string;
    selector?: Record<string, string>;
    ports?: Array<{ name?: string; port?: number; targetPort?: number | string; protocol?: string }>;
  };
}

/** The EndpointSlice fields read here (a pruned V1EndpointSlice). */
export interface EndpointSliceView {
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> };
  addressType?: string;
  endpoints?: Array<{ addresses?: string[]; conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean } }>;
}

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

interface SliceHeld {
  service: string;
  addresses: string[];
}

function sameList(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  const x = a ?? [];
  const y = b ?? [];
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

function sameService(a: ServiceMessage, b: ServiceMessage): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The addresses of a slice kube-proxy may route to (see the header). */
export function sliceAddresses(slice: EndpointSliceView): string[] {
  if (slice.addressType === 'FQDN') return [];
  const out: string[] = [];
  for (const endpoint of slice.endpoints ?? []) {
    const c = endpoint.conditions;
    // `ready` unset means ready (API docs: "nil should be interpreted as true").
    const usable = c === undefined || c.ready !== false || c.serving === true;
    if (!usable) continue;
    for (const address of endpoint.addresses ?? []) out.push(address);
  }
  return out;
}

export class ServiceIndex {
  private readonly services = new Map<string, ServiceView>();
  private readonly slices = new Map<string, SliceHeld>();
  /** Service key → keys of its slices. */
  private readonly slicesByService = new Map<string, Set<string>>();

  constructor(private readonly index: WorkloadIndex) {}

  get size(): number {
    return this.services.size;
  }

  get sliceCount(): number {
    return this.slices.size;
  }

  applyService(service: ServiceView): void {
    const key = keyOf(service.metadata);
    if (key === undefined) return;
    this.services.set(key, service);
    this.publish(key);
  }

  removeService(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    if (!this.services.delete(key)) return;
    this.publish(key);
  }

  applySlice(slice: EndpointSliceView): void {
    const sliceKey = keyOf(slice.metadata);
    if (sliceKey === undefined) return;
    const serviceName = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
    const before = this.slices.get(sliceKey);
    if (serviceName === undefined || serviceName === '') {
      // No longer (or never) a Service's slice.
      if (before !== undefined) this.removeSliceKey(sliceKey);
      return;
    }
    const service = `${slice.metadata!.namespace ?? ''}/${serviceName}`;
    const addresses = sliceAddresses(slice);
    if (before !== undefined && before.service === service && sameList(before.addresses, addresses)) return;
    if (before !== undefined && before.service !== service) this.removeSliceKey(sliceKey);
    this.slices.set(sliceKey, { service, addresses });
    let set = this.slicesByService.get(service);
    if (set === undefined) this.slicesByService.set(service, (set = new Set()));
    set.add(sliceKey);
    this.publish(service);
  }

  removeSlice(namespace: string, name: string): void {
    this.removeSliceKey(`${namespace}/${name}`);
  }

  /** Drops a namespace's Services and slices (their own deletes may come later or never, after a relist). */
  removeNamespace(namespace: string): void {
    const prefix = `${namespace}/`;
    for (const key of [...this.slices.keys()]) if (key.startsWith(prefix)) this.removeSliceKey(key);
    for (const key of [...this.services.keys()]) if (key.startsWith(prefix)) this.removeService(namespace, key.slice(prefix.length));
  }

  private removeSliceKey(sliceKey: string): void {
    const held = this.slices.get(sliceKey);
    if (held === undefined) return;
    this.slices.delete(sliceKey);
    const set = this.slicesByService.get(held.service);
    set?.delete(sliceKey);
    if (set !== undefined && set.size === 0) this.slicesByService.delete(held.service);
    this.publish(held.service);
  }

  /** Recomputes one Service's message and hands it to the index if it changed. */
  private publish(key: string): void {
    const service = this.services.get(key);
    if (service === undefined) {
      // Slices without their Service (yet): nothing to stream; kept for when it comes.
      this.index.removeService(key);
      return;
    }
    const message = this.message(key, service);
    const current = this.index.getService(key);
    if (current !== undefined && sameService(current, message)) return;
    this.index.putService(key, message);
  }

  private message(key: string, service: ServiceView): ServiceMessage {
    const slash = key.indexOf('/');
    const spec = service.spec ?? {};
    const ips = new Set<string>();
    for (const ip of spec.clusterIPs ?? []) ips.add(ip);
    if (spec.clusterIP) ips.add(spec.clusterIP);
    // 'None' marks a headless Service: its name resolves to the pod IPs themselves.
    ips.delete('None');
    ips.delete('');
    const message: ServiceMessage = { namespace: key.slice(0, slash), name: key.slice(slash + 1), clusterIps: [...ips] };
    const ports: ServicePortMessage[] = [];
    for (const p of spec.ports ?? []) {
      if (p.port === undefined) continue;
      const port: ServicePortMessage = { port: p.port };
      if (p.name) port.name = p.name;
      if (p.targetPort !== undefined) port.targetPort = String(p.targetPort);
      if (p.protocol) port.protocol = p.protocol;
      ports.push(port);
    }
    message.ports = ports;
    if (spec.selector !== undefined && Object.keys(spec.selector).length > 0) message.selector = spec.selector;
    if (spec.type) message.type = spec.type;
    if (spec.externalName) message.externalName = spec.externalName;
    const endpoints = new Set<string>();
    for (const sliceKey of this.slicesByService.get(key) ?? []) for (const ip of this.slices.get(sliceKey)!.addresses) endpoints.add(ip);
    message.endpoints = [...endpoints].sort();
    return message;
  }
}

function keyOf(metadata: { name?: string; namespace?: string } | undefined): string | undefined {
  if (metadata?.name === undefined || metadata.name === '') return undefined;
  return `${metadata.namespace ?? ''}/${metadata.name}`;
}
