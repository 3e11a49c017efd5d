// Pods and Namespaces of the cluster, watched with @kubernetes/client-node informers (ListWatch:
// list, then watch from the list's resourceVersion; a `410 Gone` makes it list again) and fed
// into the WorkloadIndex. What the library leaves to its user is done here: watches ask for
// bookmarks (so a quiet resource's resourceVersion stays fresh and a reconnect does not fall
// outside the API server's window), an informer that stopped on an error is restarted with
// backoff, and cached pods are pruned to the fields the index reads.
import { EventEmitter } from 'node:events';
import { CoreV1Api, DiscoveryV1Api, ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject, type V1EndpointSlice, type V1Namespace, type V1Pod, type V1Service } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { EndpointSliceView, ServiceIndex, ServiceView } from './service-index.js';
import { type PodView, type WorkloadIndex } from './workload-index.js';

type RequestDone = (err: unknown) => void;
type WatchCallback = (phase: string, apiObj: unknown, watchObj?: unknown) => void;

/** A Watch that asks the API server for BOOKMARK events (the library's Watch does not). */
class BookmarkWatch extends Watch {
  bookmarks = 0;
  override watch(path: string, queryParams: Record<string, string | number | boolean | undefined>, callback: WatchCallback, done: RequestDone): Promise<AbortController> {
    return super.watch(path, { ...queryParams, allowWatchBookmarks: true }, (phase, obj, watchObj) => {
      if (phase === 'BOOKMARK') this.bookmarks++;
      callback(phase, obj, watchObj);
    }, done);
  }
}

export interface ResourceWatchState {
  synced: boolean;
  resourceVersion: string;
  lists: number;
  bookmarks: number;
  errors: number;
  lastError?: string;
}

export interface ClusterWatchOptions {
  kubeConfig: KubeConfig;
  index: WorkloadIndex;
  /** Given: Services and EndpointSlices are watched too (issue 20). */
  services?: ServiceIndex;
  log: Logger;
  /** First and longest wait before restarting an informer that stopped on an error. */
  retryMinMs?: number;
  retryMaxMs?: number;
}

// The informer's cache holds every object it lists and watches; a real Pod is several kB
// (spec, status, managedFields). Keep what the index and the cache's bookkeeping read, like
// client-go's TransformFunc does.
function prunePod(pod: V1Pod): void {
  const { metadata, spec, status } = pod;
  if (metadata !== undefined) {
    pod.metadata = { name: metadata.name, namespace: metadata.namespace, uid: metadata.uid, resourceVersion: metadata.resourceVersion, labels: metadata.labels };
  }
  if (spec !== undefined) pod.spec = { containers: [], nodeName: spec.nodeName, serviceAccountName: spec.serviceAccountName, hostNetwork: spec.hostNetwork };
  if (status !== undefined) pod.status = { phase: status.phase, podIP: status.podIP, podIPs: status.podIPs };
}

function pruneService(service: V1Service): void {
  const { metadata, spec } = service;
  if (metadata !== undefined) service.metadata = { name: metadata.name, namespace: metadata.namespace, uid: metadata.uid, resourceVersion: metadata.resourceVersion };
  if (spec !== undefined) {
    service.spec = { type: spec.type, clusterIP: spec.clusterIP, clusterIPs: spec.clusterIPs, externalName: spec.externalName, selector: spec.selector, ports: spec.ports?.map((p) => ({ name: p.name, port: p.port, targetPort: p.targetPort, protocol: p.protocol })) };
  }
  delete service.status;
}

function pruneSlice(slice: V1EndpointSlice): void {
  const { metadata } = slice;
  if (metadata !== undefined) slice.metadata = { name: metadata.name, namespace: metadata.namespace, uid: metadata.uid, resourceVersion: metadata.resourceVersion, labels: metadata.labels };
  slice.endpoints = (slice.endpoints ?? []).map((e) => ({ addresses: e.addresses, conditions: e.conditions }));
  delete slice.ports;
}

class ResourceWatch<T extends KubernetesObject> {
  readonly state: ResourceWatchState = { synced: false, resourceVersion: '', lists: 0, bookmarks: 0, errors: 0 };
  readonly informer: ListWatch<T>;
  private readonly watch: BookmarkWatch;
  private retryMs: number;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    readonly kind: string,
    kubeConfig: KubeConfig,
    path: string,
    list: () => Promise<KubernetesListObject<T>>,
    private readonly options: Required<Pick<ClusterWatchOptions, 'retryMinMs' | 'retryMaxMs'>> & { log: Logger },
    private readonly onSynced: () => void,
  ) {
    this.watch = new BookmarkWatch(kubeConfig);
    this.retryMs = options.retryMinMs;
    const counted = async () => {
      this.state.lists++;
      const result = await list();
      // A successful list is what a retry waits for; start the next failure's backoff afresh.
      this.retryMs = this.options.retryMinMs;
      return result;
    };
    this.informer = new ListWatch<T>(path, this.watch, counted, false);
    this.informer.on('error', (err: unknown) => this.onError(err));
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.informer.start();
    this.afterStart();
  }

  private afterStart(): void {
    this.state.resourceVersion = this.informer.latestResourceVersion();
    if (!this.state.synced && this.state.resourceVersion !== '') {
      this.state.synced = true;
      this.onSynced();
    }
  }

  private onError(err: unknown): void {
    this.state.errors++;
    this.state.lastError = describe(err);
    if (this.stopped) return;
    // ListWatch stops on any error other than 410 and a client-side timeout; restart it. It
    // resumes from the last resourceVersion it saw, or lists again if it never got one.
    const delay = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, this.options.retryMaxMs);
    this.options.log.warn({ kind: this.kind, err: this.state.lastError, retryInMs: delay }, 'watch failed; retrying');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (this.stopped) return;
      void this.informer.start().then(() => this.afterStart());
    }, delay);
  }

  snapshotState(): ResourceWatchState {
    this.state.resourceVersion = this.informer.latestResourceVersion();
    this.state.bookmarks = this.watch.bookmarks;
    return { ...this.state };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    await this.informer.stop();
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const status = (err as { statusCode?: number; code?: number | string }).statusCode ?? (err as { code?: number | string }).code;
    return status === undefined ? err.message : `${err.message} (${status})`;
  }
  return String(err);
}

/** Emits 'synced' once Pods and Namespaces (and, when watched, Services and EndpointSlices) have been listed. */
export class ClusterWatch extends EventEmitter {
  private readonly pods: ResourceWatch<V1Pod>;
  private readonly namespaces: ResourceWatch<V1Namespace>;
  private readonly serviceWatch: ResourceWatch<V1Service> | undefined;
  private readonly sliceWatch: ResourceWatch<V1EndpointSlice> | undefined;
  private readonly resources: number;
  private syncedCount = 0;

  constructor(options: ClusterWatchOptions) {
    super();
    const { kubeConfig, index, log } = options;
    const core = kubeConfig.makeApiClient(CoreV1Api);
    const tuning = { retryMinMs: options.retryMinMs ?? 1000, retryMaxMs: options.retryMaxMs ?? 30_000, log };
    this.resources = options.services === undefined ? 2 : 4;
    const onSynced = () => {
      if (++this.syncedCount === this.resources) this.emit('synced');
    };
    this.pods = new ResourceWatch<V1Pod>('Pod', kubeConfig, '/api/v1/pods', () => core.listPodForAllNamespaces({}), tuning, onSynced);
    this.namespaces = new ResourceWatch<V1Namespace>('Namespace', kubeConfig, '/api/v1/namespaces', () => core.listNamespace({}), tuning, onSynced);
    const upsert = (pod: V1Pod) => {
      prunePod(pod);
      index.applyPod(pod as PodView);
    };
    this.pods.informer.on('add', upsert);
    this.pods.informer.on('update', upsert);
    this.pods.informer.on('delete', (pod) => index.removePod(pod.metadata?.namespace ?? '', pod.metadata?.name ?? ''));
    this.namespaces.informer.on('delete', (ns) => {
      if (!ns.metadata?.name) return;
      index.removeNamespace(ns.metadata.name);
      options.services?.removeNamespace(ns.metadata.name);
    });
    const services = options.services;
    if (services !== undefined) {
      const discovery = kubeConfig.makeApiClient(DiscoveryV1Api);
      this.serviceWatch = new ResourceWatch<V1Service>('Service', kubeConfig, '/api/v1/services', () => core.listServiceForAllNamespaces({}), tuning, onSynced);
      this.sliceWatch = new ResourceWatch<V1EndpointSlice>('EndpointSlice', kubeConfig, '/apis/discovery.k8s.io/v1/endpointslices', () => discovery.listEndpointSliceForAllNamespaces({}), tuning, onSynced);
      const upsertService = (service: V1Service) => {
        pruneService(service);
        services.applyService(service as ServiceView);
      };
      this.serviceWatch.informer.on('add', upsertService);
      this.serviceWatch.informer.on('update', upsertService);
      this.serviceWatch.informer.on('delete', (s) => services.removeService(s.metadata?.namespace ?? '', s.metadata?.name ?? ''));
      const upsertSlice = (slice: V1EndpointSlice) => {
        pruneSlice(slice);
        services.applySlice(slice as EndpointSliceView);
      };
      this.sliceWatch.informer.on('add', upsertSlice);
      this.sliceWatch.informer.on('update', upsertSlice);
      this.sliceWatch.informer.on('delete', (s) => services.removeSlice(s.metadata?.namespace ?? '', s.metadata?.name ?? ''));
    }
  }

  get synced(): boolean {
    return this.syncedCount >= this.resources;
  }

  private all(): Array<ResourceWatch<KubernetesObject>> {
    const list: Array<ResourceWatch<KubernetesObject>> = [this.pods as ResourceWatch<KubernetesObject>, this.namespaces as ResourceWatch<KubernetesObject>];
    if (this.serviceWatch !== undefined) list.push(this.serviceWatch as ResourceWatch<KubernetesObject>);
    if (this.sliceWatch !== undefined) list.push(this.sliceWatch as ResourceWatch<KubernetesObject>);
    return list;
  }

  async start(): Promise<void> {
    await Promise.all(this.all().map((w) => w.start()));
  }

  state(): { pods: ResourceWatchState; namespaces: ResourceWatchState; services?: ResourceWatchState; endpointSlices?: ResourceWatchState } {
    const state: { pods: ResourceWatchState; namespaces: ResourceWatchState; services?: ResourceWatchState; endpointSlices?: ResourceWatchState } = { pods: this.pods.snapshotState(), namespaces: this.namespaces.snapshotState() };
    if (this.serviceWatch !== undefined) state.services = this.serviceWatch.snapshotState();
    if (this.sliceWatch !== undefined) state.endpointSlices = this.sliceWatch.snapshotState();
    return state;
  }

  async stop(): Promise<void> {
    await Promise.all(this.all().map((w) => w.stop()));
  }
}
