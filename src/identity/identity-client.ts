// The sidecar's subscription to the controller's identity stream (proto/sidewall/identity/v1/
// identity.proto): subscribes at start, applies the snapshot and the changes to the
// WorkloadDirectory, and on any loss (error, end, no update within `heartbeatTimeoutMs`)
// reconnects with backoff and resumes from its epoch and version. While it is not in sync the
// directory keeps the last map and is marked stale.
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { createIdentityStreamClient, versionNumber, type IdentityStreamClient, type IdentityUpdateMessage, type ServiceMessage, type WorkloadMessage } from './identity-proto.js';
import type { ServiceEntry } from './service-directory.js';
import type { WorkloadDirectory } from './workload-directory.js';

export type IdentityLinkState = 'connecting' | 'synced' | 'disconnected';

export interface IdentityClientOptions {
  /** host:port of the controller's identity stream. */
  address: string;
  directory: WorkloadDirectory;
  /** The projected service-account token, re-read on every connect (the kubelet rotates it). */
  tokenFile?: string;
  /** PEM CA bundle: TLS to the controller, verified against it. Without it the channel is plaintext. */
  caFile?: string;
  /** namespace/pod of this sidecar, for the controller's logs. */
  client: string;
  log: Logger;
  retryMinMs?: number;
  retryMaxMs?: number;
  /** Reconnect when nothing (not even a heartbeat) arrived this long (default 35 s; the controller beats every 10 s). */
  heartbeatTimeoutMs?: number;
}

export interface IdentityLinkStatus {
  state: IdentityLinkState;
  controller: string;
  epoch: string;
  version: number;
  workloads: number;
  /** Services of the cluster-IP map from the controller. */
  services: number;
  /** Whether the directory's cluster map may be out of date. */
  stale: boolean;
  staleSeconds?: number;
  lastUpdate?: string;
  reconnects: number;
  lastError?: string;
}

export class IdentityTokenError extends Error {
  readonly code = 'SW_IDENTITY_TOKEN';
  constructor(readonly file: string, detail: string) {
    super(`identity.tokenFile ${file}: ${detail} (the sidecar's projected service-account token)`);
    this.name = 'IdentityTokenError';
  }
}

/** A streamed Service as the directory holds it. */
export function serviceEntry(message: ServiceMessage): ServiceEntry {
  const entry: ServiceEntry = {
    namespace: message.namespace,
    name: message.name,
    clusterIPs: message.clusterIps ?? [],
    ports: (message.ports ?? []).map((p) => {
      const port: ServiceEntry['ports'][number] = { port: p.port };
      if (p.targetPort !== undefined && p.targetPort !== '') port.targetPort = /^[0-9]+$/.test(p.targetPort) ? Number(p.targetPort) : p.targetPort;
      if (p.protocol) port.protocol = p.protocol;
      if (p.name) port.name = p.name;
      return port;
    }),
    // From the controller the endpoints are always the EndpointSlices' (an empty list: none ready).
    endpoints: message.endpoints ?? [],
  };
  if (message.selector !== undefined && Object.keys(message.selector).length > 0) entry.selector = message.selector;
  if (message.type) entry.type = message.type;
  if (message.externalName) entry.externalName = message.externalName;
  return entry;
}

export class IdentityClient extends EventEmitter {
  private readonly client: IdentityStreamClient;
  private call: grpc.ClientReadableStream<IdentityUpdateMessage> | undefined;
  private state: IdentityLinkState = 'connecting';
  private epoch = '';
  private version = 0;
  /** Parts of a split snapshot not applied yet. */
  private pendingSnapshot: WorkloadMessage[] | null = null;
  private pendingServices: ServiceMessage[] = [];
  private retryMs: number;
  private retryTimer: NodeJS.Timeout | undefined;
  private silenceTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private lastUpdateAt: number | undefined;
  private lastError: string | undefined;
  readonly counts = { snapshots: 0, changes: 0, heartbeats: 0, reconnects: 0 };

  constructor(private readonly options: IdentityClientOptions) {
    super();
    this.retryMs = options.retryMinMs ?? 500;
    const credentials = options.caFile === undefined ? grpc.credentials.createInsecure() : grpc.credentials.createSsl(readFileSync(options.caFile));
    this.client = createIdentityStreamClient(options.address, credentials, { 'grpc.max_receive_message_length': 16 << 20 });
    options.directory.setStale(true);
  }

  start(): void {
    this.connect();
  }

  status(now = Date.now()): IdentityLinkStatus {
    const d = this.options.directory;
    const status: IdentityLinkStatus = { state: this.state, controller: this.options.address, epoch: this.epoch, version: this.version, workloads: d.clusterSize, services: d.services.clusterSize, stale: d.stale, reconnects: this.counts.reconnects };
    if (d.staleSince !== null) status.staleSeconds = Math.round((now - d.staleSince) / 100) / 10;
    if (this.lastUpdateAt !== undefined) status.lastUpdate = new Date(this.lastUpdateAt).toISOString();
    if (this.lastError !== undefined) status.lastError = this.lastError;
    return status;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.silenceTimer);
    this.call?.cancel();
    this.client.close();
  }

  private connect(): void {
    if (this.closed) return;
    const metadata = new grpc.Metadata();
    if (this.options.tokenFile !== undefined) {
      let token: string;
      try {
        token = readFileSync(this.options.tokenFile, 'utf8').trim();
        if (token === '') throw new Error('the file is empty');
      } catch (err) {
        this.fail(new IdentityTokenError(this.options.tokenFile, (err as Error).message).message);
        return;
      }
      metadata.set('authorization', `Bearer ${token}`);
    }
    this.pendingSnapshot = null;
    this.pendingServices = [];
    const call = this.client.Subscribe({ epoch: this.epoch, version: this.version, client: this.options.client }, metadata);
    this.call = call;
    this.armSilenceTimer();
    call.on('data', (update: IdentityUpdateMessage) => {
      if (this.call === call) this.onUpdate(update);
    });
    const lost = (reason: string) => {
      if (this.call !== call) return;
      this.call = undefined;
      this.fail(reason);
    };
    call.on('error', (err: grpc.ServiceError) => lost(err.details || err.message));
    call.on('end', () => lost('the controller ended the stream'));
  }

  private onUpdate(update: IdentityUpdateMessage): void {
    this.armSilenceTimer();
    this.lastUpdateAt = Date.now();
    const version = versionNumber(update.version);
    if (update.reset === true || this.pendingSnapshot !== null) {
      this.pendingSnapshot = update.reset === true ? [...(update.upserts ?? [])] : this.pendingSnapshot!.concat(update.upserts ?? []);
      this.pendingServices = update.reset === true ? [...(update.services ?? [])] : this.pendingServices.concat(update.services ?? []);
      if (update.more === true) return;
      // Services first: the pod map's replacement then recomputes their endpoints once.
      this.options.directory.services.replaceCluster(this.pendingServices.map(serviceEntry));
      this.options.directory.replaceCluster(this.pendingSnapshot);
      this.pendingSnapshot = null;
      this.pendingServices = [];
      this.counts.snapshots++;
    } else if (update.epoch !== this.epoch && this.epoch !== '') {
      // Changes against a map we do not have: start over with a snapshot.
      this.epoch = '';
      this.version = 0;
      this.call?.cancel();
      return;
    } else if ((update.upserts?.length ?? 0) + (update.removed?.length ?? 0) + (update.services?.length ?? 0) + (update.removedServices?.length ?? 0) > 0) {
      if ((update.services?.length ?? 0) + (update.removedServices?.length ?? 0) > 0) {
        this.options.directory.services.patchCluster((update.services ?? []).map(serviceEntry), update.removedServices ?? []);
      }
      this.options.directory.patchCluster(update.upserts ?? [], update.removed ?? []);
      this.counts.changes++;
    } else this.counts.heartbeats++;
    this.epoch = update.epoch;
    this.version = version;
    this.retryMs = this.options.retryMinMs ?? 500;
    if (this.state !== 'synced') {
      this.state = 'synced';
      this.options.directory.setStale(false);
      this.lastError = undefined;
      this.options.log.info({ controller: this.options.address, epoch: this.epoch, version, workloads: this.options.directory.clusterSize }, 'workload identities in sync with the controller');
      this.emit('synced');
    }
    this.emit('update', version);
  }

  private armSilenceTimer(): void {
    clearTimeout(this.silenceTimer);
    this.silenceTimer = setTimeout(() => {
      this.options.log.warn({ controller: this.options.address }, 'no update from the controller; reconnecting');
      this.call?.cancel();
    }, this.options.heartbeatTimeoutMs ?? 35_000);
    this.silenceTimer.unref();
  }

  private fail(reason: string): void {
    clearTimeout(this.silenceTimer);
    if (this.closed) return;
    const wasSynced = this.state === 'synced';
    this.state = wasSynced || this.state === 'disconnected' ? 'disconnected' : 'connecting';
    this.options.directory.setStale(true);
    this.lastError = reason;
    if (wasSynced) this.options.log.warn({ controller: this.options.address, reason, keeping: this.options.directory.clusterSize }, 'lost the controller; keeping the last workload identities');
    this.emit('disconnected', reason);
    // Jitter, so that the sidecars of a cluster do not all come back in the same millisecond.
    const delay = Math.round(this.retryMs * (0.5 + Math.random() / 2));
    this.retryMs = Math.min(this.retryMs * 2, this.options.retryMaxMs ?? 30_000);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.counts.reconnects++;
      this.connect();
    }, delay);
    this.retryTimer.unref();
  }
}
