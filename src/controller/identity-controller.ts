// `sidewall controller`'s parts put together: the cluster watch feeds the index, the index feeds
// the identity stream; the stream answers sidecars once the first lists are in.
import type * as grpc from '@grpc/grpc-js';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { ClusterWatch, type ResourceWatchState } from './cluster-watch.js';
import { IdentityServer } from './identity-server.js';
import { ServiceIndex } from './service-index.js';
import { TokenReviewAuthenticator, type Authenticator } from './token-review.js';
import { WorkloadIndex } from './workload-index.js';

export interface IdentityControllerOptions {
  kubeConfig: KubeConfig;
  log: Logger;
  /** 'tokenreview': sidecars must send a service-account token the API server accepts. */
  auth: 'tokenreview' | 'none';
  /** Audiences the sidecars' tokens must carry (default ['sidewall-controller']). */
  audiences?: string[];
  batchMs?: number;
  heartbeatMs?: number;
  changeLogCapacity?: number;
  snapshotChunk?: number;
  retryMinMs?: number;
  retryMaxMs?: number;
  /** Watch Services and EndpointSlices and stream the cluster-IP map (default true). */
  services?: boolean;
}

export interface IdentityControllerStatus {
  synced: boolean;
  epoch: string;
  version: number;
  workloads: number;
  labelSets: number;
  subscribers: number;
  /** Services streamed, and EndpointSlices held. */
  services: number;
  endpointSlices: number;
  pods: ResourceWatchState;
  namespaces: ResourceWatchState;
  servicesWatch?: ResourceWatchState;
  endpointSlicesWatch?: ResourceWatchState;
}

export const DEFAULT_AUDIENCE = 'sidewall-controller';

export class IdentityController {
  readonly index: WorkloadIndex;
  readonly services: ServiceIndex | undefined;
  readonly watch: ClusterWatch;
  readonly server: IdentityServer;
  readonly authenticator: Authenticator | null;
  private readonly synced: Promise<void>;

  constructor(private readonly options: IdentityControllerOptions) {
    this.index = new WorkloadIndex(options.changeLogCapacity);
    this.services = options.services === false ? undefined : new ServiceIndex(this.index);
    this.watch = new ClusterWatch({
      kubeConfig: options.kubeConfig,
      index: this.index,
      ...(this.services !== undefined ? { services: this.services } : {}),
      log: options.log,
      ...(options.retryMinMs !== undefined ? { retryMinMs: options.retryMinMs } : {}),
      ...(options.retryMaxMs !== undefined ? { retryMaxMs: options.retryMaxMs } : {}),
    });
    this.authenticator = options.auth === 'none' ? null : new TokenReviewAuthenticator(options.kubeConfig, { audiences: options.audiences ?? [DEFAULT_AUDIENCE] });
    this.server = new IdentityServer({
      index: this.index,
      authenticator: this.authenticator,
      log: options.log,
      ...(options.batchMs !== undefined ? { batchMs: options.batchMs } : {}),
      ...(options.heartbeatMs !== undefined ? { heartbeatMs: options.heartbeatMs } : {}),
      ...(options.snapshotChunk !== undefined ? { snapshotChunk: options.snapshotChunk } : {}),
    });
    this.synced = new Promise((resolve) => this.watch.once('synced', () => resolve()));
    void this.synced.then(() => {
      this.server.markReady();
      options.log.info({ workloads: this.index.size, services: this.index.serviceCount, version: this.index.version }, 'cluster listed; serving identities');
    });
  }

  /** Listens on `address` (host:port) and starts watching; resolves with the bound port (before the first lists are in). */
  async start(address: string, credentials: grpc.ServerCredentials): Promise<number> {
    const port = await this.server.listen(address, credentials);
    void this.watch.start();
    return port;
  }

  whenSynced(): Promise<void> {
    return this.synced;
  }

  status(): IdentityControllerStatus {
    const { pods, namespaces, services, endpointSlices } = this.watch.state();
    return {
      services: this.index.serviceCount,
      endpointSlices: this.services?.sliceCount ?? 0,
      ...(services !== undefined ? { servicesWatch: services } : {}),
      ...(endpointSlices !== undefined ? { endpointSlicesWatch: endpointSlices } : {}),
      synced: this.watch.synced,
      epoch: this.index.epoch,
      version: this.index.version,
      workloads: this.index.size,
      labelSets: this.index.distinctLabelSets,
      subscribers: this.server.subscriberCount,
      pods,
      namespaces,
    };
  }

  async close(): Promise<void> {
    await this.watch.stop();
    await this.server.close();
  }
}
