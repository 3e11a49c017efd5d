// The controller's side of sidewall.identity.v1.IdentityStream (proto/sidewall/identity/v1/
// identity.proto): authenticates each sidecar, answers with a snapshot or the changes since the
// sidecar's version, then streams changes. Changes are batched for `batchMs` and encoded once for
// every subscriber that is up to date; a subscriber whose stream is full (write() returned false)
// is skipped until it drains and then catches up from its own version.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { identityServiceDefinition, versionNumber, type IdentityUpdateMessage, type SubscribeRequestMessage } from '../identity/identity-proto.js';
import type { Authenticator } from './token-review.js';
import type { IndexChanges, WorkloadIndex } from './workload-index.js';

export interface IdentityServerOptions {
  index: WorkloadIndex;
  /** null: no authentication (tests, or a network you trust). */
  authenticator: Authenticator | null;
  log: Logger;
  /** Changes are gathered this long before they are sent (default 20 ms). */
  batchMs?: number;
  /** An empty update after this long without one (default 10 s). */
  heartbeatMs?: number;
  /** Entries per message of a snapshot (default 2000; gRPC's default message limit is 4 MiB). */
  snapshotChunk?: number;
}

function changeUpdate(epoch: string, version: number, changes: IndexChanges): IdentityUpdateMessage {
  const update: IdentityUpdateMessage = { epoch, version, upserts: changes.upserts, removed: changes.removed };
  if (changes.services.length > 0) update.services = changes.services;
  if (changes.removedServices.length > 0) update.removedServices = changes.removedServices;
  return update;
}

type SubscribeCall = grpc.ServerWritableStream<SubscribeRequestMessage, IdentityUpdateMessage>;

interface Subscriber {
  call: SubscribeCall;
  client: string;
  version: number;
  blocked: boolean;
  lastSentAt: number;
}

export class IdentityServer {
  private readonly server = new grpc.Server({ 'grpc.max_send_message_length': 16 << 20 });
  private readonly subscribers = new Set<Subscriber>();
  /** Sidecars that subscribed before the first list of pods: answered once it is in. */
  private readonly waiting = new Set<Subscriber>();
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly heartbeatTimer: NodeJS.Timeout;
  private ready = false;
  private readonly batchMs: number;
  private readonly heartbeatMs: number;
  private readonly snapshotChunk: number;
  readonly stats = { subscribes: 0, snapshots: 0, resumes: 0, rejected: 0, updatesSent: 0 };

  constructor(private readonly options: IdentityServerOptions) {
    this.batchMs = options.batchMs ?? 20;
    this.heartbeatMs = options.heartbeatMs ?? 10_000;
    this.snapshotChunk = options.snapshotChunk ?? 2000;
    this.server.addService(identityServiceDefinition(), { Subscribe: (call: SubscribeCall) => void this.subscribe(call) });
    options.index.onChange(() => this.scheduleFlush());
    this.heartbeatTimer = setInterval(() => this.heartbeat(), Math.max(50, Math.floor(this.heartbeatMs / 2)));
    this.heartbeatTimer.unref();
  }

  /** Binds `host:port` (port 0: any); resolves with the port. */
  listen(address: string, credentials: grpc.ServerCredentials): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
    });
  }

  /** The index holds the cluster's state (first lists done): waiting subscribers get their snapshot. */
  markReady(): void {
    if (this.ready) return;
    this.ready = true;
    for (const sub of this.waiting) this.startSubscriber(sub);
    this.waiting.clear();
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  private async subscribe(call: SubscribeCall): Promise<void> {
    this.stats.subscribes++;
    const request = call.request;
    const client = request.client || call.getPeer();
    if (this.options.authenticator !== null) {
      const header = String(call.metadata.get('authorization')[0] ?? '');
      const token = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
      let reason: string | undefined;
      if (token === '') reason = 'no bearer token in the authorization metadata (the sidecar sends its projected service-account token)';
      else {
        try {
          const result = await this.options.authenticator.authenticate(token);
          if (!result.ok) reason = result.reason;
        } catch (err) {
          this.options.log.error({ client, err: (err as Error).message }, 'cannot authenticate a sidecar');
          call.emit('error', { code: grpc.status.UNAVAILABLE, details: (err as Error).message });
          return;
        }
      }
      if (reason !== undefined) {
        this.stats.rejected++;
        this.options.log.warn({ client, reason }, 'sidecar refused');
        call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: reason });
        return;
      }
    }
    if (call.cancelled) return;
    const requestEpoch = request.epoch ?? '';
    const sub: Subscriber = {
      call,
      client,
      // A version of another epoch cannot be resumed: -1 forces a snapshot.
      version: requestEpoch === this.options.index.epoch ? versionNumber(request.version) : -1,
      blocked: false,
      lastSentAt: 0,
    };
    const remove = () => {
      this.subscribers.delete(sub);
      this.waiting.delete(sub);
    };
    call.on('cancelled', remove);
    call.on('close', remove);
    call.on('error', remove);
    call.on('drain', () => {
      sub.blocked = false;
      this.catchUp(sub);
    });
    if (this.ready) this.startSubscriber(sub);
    else this.waiting.add(sub);
  }

  private startSubscriber(sub: Subscriber): void {
    if (sub.call.cancelled) return;
    this.subscribers.add(sub);
    if (sub.version >= 0 && this.options.index.changesSince(sub.version) !== undefined) this.stats.resumes++;
    this.catchUp(sub);
    this.options.log.info({ client: sub.client, version: sub.version, resumed: sub.version >= 0 }, 'sidecar subscribed');
  }

  /** Brings one subscriber to the index's version: its changes, or a snapshot when they are too old. */
  private catchUp(sub: Subscriber): void {
    const index = this.options.index;
    if (sub.blocked || sub.version === index.version) {
      if (sub.lastSentAt === 0) this.send(sub, { epoch: index.epoch, version: index.version });
      return;
    }
    const changes = sub.version < 0 ? undefined : index.changesSince(sub.version);
    if (changes !== undefined) {
      this.send(sub, changeUpdate(index.epoch, index.version, changes));
      return;
    }
    this.stats.snapshots++;
    const all = index.snapshot();
    const services = index.serviceSnapshot();
    const chunk = this.snapshotChunk;
    if (all.length === 0) {
      this.send(sub, { epoch: index.epoch, version: index.version, reset: true, services });
      return;
    }
    for (let i = 0; i < all.length; i += chunk) {
      const part: IdentityUpdateMessage = { epoch: index.epoch, version: index.version, upserts: all.slice(i, i + chunk) };
      if (i === 0) {
        part.reset = true;
        // Services are few next to pods (and a Service is small): all of them ride in the first part.
        part.services = services;
      }
      if (i + chunk < all.length) part.more = true;
      // The parts of one snapshot go out together even if the stream reports it is full.
      this.send(sub, part);
    }
  }

  private send(sub: Subscriber, update: IdentityUpdateMessage): void {
    sub.lastSentAt = Date.now();
    sub.version = versionNumber(update.version);
    this.stats.updatesSent++;
    if (!sub.call.write(update)) sub.blocked = true;
  }

  private scheduleFlush(): void {
    if (this.flushTimer !== undefined || !this.ready) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.flush();
    }, this.batchMs);
  }

  private flush(): void {
    const index = this.options.index;
    // The subscribers that were all at the same version share one update (computed once).
    const shared = new Map<number, IdentityUpdateMessage | null>();
    for (const sub of this.subscribers) {
      if (sub.blocked || sub.version === index.version) continue;
      let update = shared.get(sub.version);
      if (update === undefined) {
        const changes = sub.version < 0 ? undefined : index.changesSince(sub.version);
        update = changes === undefined ? null : changeUpdate(index.epoch, index.version, changes);
        shared.set(sub.version, update);
      }
      if (update === null) this.catchUp(sub);
      else this.send(sub, update);
    }
  }

  private heartbeat(): void {
    const now = Date.now();
    const index = this.options.index;
    for (const sub of this.subscribers) {
      if (!sub.blocked && now - sub.lastSentAt >= this.heartbeatMs) {
        if (sub.version === index.version) this.send(sub, { epoch: index.epoch, version: sub.version });
        else this.catchUp(sub);
      }
    }
  }

  /** Ends every stream (sidecars reconnect elsewhere) and stops listening. */
  async close(): Promise<void> {
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.flushTimer);
    for (const sub of [...this.subscribers, ...this.waiting]) sub.call.end();
    this.subscribers.clear();
    this.waiting.clear();
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
  }

  /** Cuts every stream at once (tests: a controller crash as the sidecars see it). */
  forceClose(): void {
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.flushTimer);
    this.server.forceShutdown();
  }
}

