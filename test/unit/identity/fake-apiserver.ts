// A local HTTP server that speaks the part of the Kubernetes API the controller uses: List and
// Watch of Pods, Namespaces, Services and EndpointSlices (resourceVersion, `watch=true`, `allowWatchBookmarks=true`, JSON
// lines of ADDED/MODIFIED/DELETED/BOOKMARK/ERROR events, `410 Gone` for a resourceVersion older
// than its history) and TokenReview. There is no API server on the test machines.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

type Kind = 'pods' | 'namespaces' | 'services' | 'endpointslices';

const PATHS: Record<string, Kind> = {
  '/api/v1/pods': 'pods',
  '/api/v1/namespaces': 'namespaces',
  '/api/v1/services': 'services',
  '/apis/discovery.k8s.io/v1/endpointslices': 'endpointslices',
};
const KIND_NAMES: Record<Kind, string> = { pods: 'Pod', namespaces: 'Namespace', services: 'Service', endpointslices: 'EndpointSlice' };
type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface FakeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string>; uid?: string };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  addressType?: string;
  endpoints?: unknown[];
  ports?: unknown[];
}

export function makeService(namespace: string, name: string, clusterIPs: string[], ports: Array<{ port: number; targetPort?: number | string; name?: string }>, selector?: Record<string, string>, extra: { type?: string; externalName?: string } = {}): FakeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace, uid: `svc-${namespace}-${name}` },
    spec: { type: extra.type ?? 'ClusterIP', clusterIP: clusterIPs[0] ?? 'None', clusterIPs, ports: ports.map((p) => ({ protocol: 'TCP', ...p })), ...(selector ? { selector } : {}), ...(extra.externalName ? { externalName: extra.externalName } : {}) },
    status: { loadBalancer: {} },
  };
}

/** A slice of `service`; endpoints as [ip, ready] (ready undefined: the condition is left out). */
export function makeSlice(namespace: string, name: string, service: string | undefined, endpoints: Array<[string, boolean | undefined, { serving?: boolean; terminating?: boolean }?]>, addressType = 'IPv4'): FakeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace, uid: `eps-${namespace}-${name}`, ...(service !== undefined ? { labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } } : {}) },
    addressType,
    endpoints: endpoints.map(([ip, ready, more]) => ({ addresses: [ip], conditions: { ...(ready !== undefined ? { ready } : {}), ...(more ?? {}) }, targetRef: { kind: 'Pod', namespace, name: `pod-${ip}` } })),
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  };
}

interface Watcher {
  kind: Kind;
  res: ServerResponse;
  bookmarks: boolean;
}

export interface WatchRequestSeen {
  kind: Kind;
  resourceVersion: string;
  allowWatchBookmarks: boolean;
}

export function makePod(namespace: string, name: string, ip: string, labels: Record<string, string>, extra: { serviceAccount?: string; node?: string; phase?: string; hostNetwork?: boolean; ip6?: string } = {}): FakeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels, uid: `${namespace}-${name}` },
    spec: { containers: [{ name: 'app', image: 'app:1' }], serviceAccountName: extra.serviceAccount ?? 'default', nodeName: extra.node ?? 'node-1', ...(extra.hostNetwork ? { hostNetwork: true } : {}) },
    status: { phase: extra.phase ?? 'Running', podIP: ip, podIPs: [{ ip }, ...(extra.ip6 ? [{ ip: extra.ip6 }] : [])] },
  };
}

export class FakeApiServer {
  private readonly server: Server = createServer((req, res) => this.handle(req, res));
  private rv = 1000;
  /** Events at resourceVersions not above this are forgotten (etcd compaction): older watches get 410. */
  private compactedRv = 0;
  private readonly objects: Record<Kind, Map<string, FakeObject>> = { pods: new Map(), namespaces: new Map(), services: new Map(), endpointslices: new Map() };
  private readonly history: Array<{ rv: number; kind: Kind; line: string }> = [];
  private readonly watchers = new Set<Watcher>();
  /** How a too-old watch is refused: an ERROR event in a 200 stream (what the API server does) or an HTTP 410. */
  goneAs: 'event' | 'status' = 'event';
  /** The next N list requests answer 503. */
  failLists = 0;
  readonly lists: Record<Kind, number> = { pods: 0, namespaces: 0, services: 0, endpointslices: 0 };
  readonly watchRequests: WatchRequestSeen[] = [];
  readonly gone: Kind[] = [];
  /** token → service account username. */
  readonly tokens = new Map<string, string>();
  tokenReviews: Array<{ token: string; audiences?: string[] }> = [];
  port = 0;

  async start(): Promise<void> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as AddressInfo).port;
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: `http://127.0.0.1:${this.port}`, skipTLSVerify: true }],
      users: [{ name: 'controller', token: 'controller-token' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'controller' }],
      currentContext: 'fake',
    });
    return kc;
  }

  get resourceVersion(): number {
    return this.rv;
  }

  get openWatches(): number {
    return this.watchers.size;
  }

  addPod(pod: FakeObject): void {
    this.put('pods', pod);
  }

  updatePod(namespace: string, name: string, change: (pod: FakeObject) => void): void {
    const pod = this.objects.pods.get(`${namespace}/${name}`);
    if (pod === undefined) throw new Error(`no pod ${namespace}/${name}`);
    const copy = structuredClone(pod);
    change(copy);
    this.put('pods', copy);
  }

  deletePod(namespace: string, name: string): void {
    this.remove('pods', `${namespace}/${name}`);
  }

  /** Adds or replaces a Service or EndpointSlice (by kind). */
  putObject(object: FakeObject): void {
    this.put(object.kind === 'Service' ? 'services' : 'endpointslices', object);
  }

  updateObject(kind: 'services' | 'endpointslices', namespace: string, name: string, change: (o: FakeObject) => void): void {
    const found = this.objects[kind].get(`${namespace}/${name}`);
    if (found === undefined) throw new Error(`no ${kind} ${namespace}/${name}`);
    const copy = structuredClone(found);
    change(copy);
    this.put(kind, copy);
  }

  deleteObject(kind: 'services' | 'endpointslices', namespace: string, name: string): void {
    this.remove(kind, `${namespace}/${name}`);
  }

  addNamespace(name: string, labels: Record<string, string> = {}): void {
    this.put('namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
  }

  /** Deletes the namespace (and, as the API server's garbage collection would later, its pods). */
  deleteNamespace(name: string, withPods = true): void {
    this.remove('namespaces', name);
    if (withPods) for (const key of [...this.objects.pods.keys()]) if (key.startsWith(`${name}/`)) this.remove('pods', key);
  }

  /** Sends a BOOKMARK with the current resourceVersion on every watch that asked for them. */
  bookmark(): number {
    for (const w of this.watchers) {
      if (!w.bookmarks) continue;
      const kind = KIND_NAMES[w.kind];
      w.res.write(JSON.stringify({ type: 'BOOKMARK', object: { kind, apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) } } }) + '\n');
    }
    return this.rv;
  }

  /** Ends every open watch (the API server's watch timeout, a load balancer cutting idle streams). */
  dropWatches(): void {
    for (const w of this.watchers) w.res.destroy();
    this.watchers.clear();
  }

  /** Forgets the history up to now: a watch from an older resourceVersion gets 410 Gone. */
  compact(): void {
    this.compactedRv = this.rv;
    this.history.length = 0;
  }

  /** Changes made while nobody watches (then compact + dropWatches: the client has missed them). */
  async close(): Promise<void> {
    this.dropWatches();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private put(kind: Kind, object: FakeObject): void {
    const key = kind === 'namespaces' ? object.metadata.name : `${object.metadata.namespace}/${object.metadata.name}`;
    const type: EventType = this.objects[kind].has(key) ? 'MODIFIED' : 'ADDED';
    object.metadata.resourceVersion = String(++this.rv);
    this.objects[kind].set(key, object);
    this.publish(kind, type, object);
  }

  private remove(kind: Kind, key: string): void {
    const object = this.objects[kind].get(key);
    if (object === undefined) return;
    this.objects[kind].delete(key);
    const gone = structuredClone(object);
    gone.metadata.resourceVersion = String(++this.rv);
    this.publish(kind, 'DELETED', gone);
  }

  private publish(kind: Kind, type: EventType, object: FakeObject): void {
    const line = JSON.stringify({ type, object }) + '\n';
    this.history.push({ rv: this.rv, kind, line });
    for (const w of this.watchers) if (w.kind === kind) w.res.write(line);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    if (req.method === 'POST' && url.pathname === '/apis/authentication.k8s.io/v1/tokenreviews') return void this.tokenReview(req, res);
    const kind: Kind | undefined = PATHS[url.pathname];
    if (req.method !== 'GET' || kind === undefined) return this.status(res, 404, 'NotFound', `${req.method} ${url.pathname} is not served by the fake API server`);
    if (url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1') return this.watch(kind, url, res);
    if (this.failLists > 0) {
      this.failLists--;
      return this.status(res, 503, 'ServiceUnavailable', 'the fake API server is starting');
    }
    this.lists[kind]++;
    const items = [...this.objects[kind].values()];
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ apiVersion: kind === 'endpointslices' ? 'discovery.k8s.io/v1' : 'v1', kind: `${KIND_NAMES[kind]}List`, metadata: { resourceVersion: String(this.rv) }, items }));
  }

  private watch(kind: Kind, url: URL, res: ServerResponse): void {
    const from = url.searchParams.get('resourceVersion') ?? '';
    const bookmarks = url.searchParams.get('allowWatchBookmarks') === 'true';
    this.watchRequests.push({ kind, resourceVersion: from, allowWatchBookmarks: bookmarks });
    const fromRv = from === '' || from === '0' ? this.rv : Number(from);
    if (fromRv < this.compactedRv) {
      this.gone.push(kind);
      const message = `too old resource version: ${fromRv} (${this.compactedRv})`;
      if (this.goneAs === 'status') return this.status(res, 410, 'Expired', message);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: 'Expired', code: 410 } }) + '\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    for (const event of this.history) if (event.kind === kind && event.rv > fromRv) res.write(event.line);
    const watcher: Watcher = { kind, res, bookmarks };
    this.watchers.add(watcher);
    res.on('close', () => this.watchers.delete(watcher));
  }

  private async tokenReview(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = '';
    for await (const chunk of req) body += String(chunk);
    const review = JSON.parse(body) as { spec?: { token?: string; audiences?: string[] } };
    const token = review.spec?.token ?? '';
    this.tokenReviews.push({ token, ...(review.spec?.audiences ? { audiences: review.spec.audiences } : {}) });
    const username = this.tokens.get(token);
    const status = username === undefined ? { authenticated: false, error: 'invalid bearer token' } : { authenticated: true, user: { username, groups: ['system:serviceaccounts'] }, audiences: review.spec?.audiences ?? [] };
    res.writeHead(201, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: review.spec, status }));
  }

  private status(res: ServerResponse, code: number, reason: string, message: string): void {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }));
  }
}
