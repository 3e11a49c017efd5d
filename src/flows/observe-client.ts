// Client of the admin flow stream (sidewall.flows.v1.FlowStream/Observe) with @grpc/grpc-js:
// the interop counterpart of observe-service.ts, used by `sidewall observe`.
import * as grpc from '@grpc/grpc-js';
import type { FlowFilter } from './flow-filter.js';
import { OBSERVE_PATH, OBSERVE_SERVICE, type ObserveRequest, type ObserveResponse } from './observe-service.js';
import { loadProto, protoMethod } from './proto-files.js';
import type { FlowRecord } from './types.js';

export interface ObserveClientOptions {
  /** host:port of the sidecar's admin port. */
  admin: string;
  last: number;
  follow: boolean;
  filter: FlowFilter;
  /** Give up connecting after this long; default 5 s. */
  connectTimeoutMs?: number;
  /** Bearer token for a sidecar reached from outside its pod (its admin.tokenFile). */
  token?: string;
}

export class ObserveStreamError extends Error {
  readonly code = 'SW_OBSERVE_STREAM';
  constructor(readonly grpcCode: number, readonly admin: string, details: string) {
    super(`flow stream of ${admin}: ${grpc.status[grpcCode] ?? grpcCode}: ${details}`);
    this.name = 'ObserveStreamError';
  }
}

export interface ObserveSession {
  /** Resolves when the sidecar ends the stream; rejects with ObserveStreamError. Cancel resolves it. */
  readonly done: Promise<void>;
  cancel(): void;
}

function metadata(token: string | undefined): grpc.Metadata {
  const m = new grpc.Metadata();
  if (token !== undefined) m.set('authorization', `Bearer ${token}`);
  return m;
}

/**
 * Like Client.waitForReady, but gives up at the first failed attempt: for a command-line tool a
 * refused connection is an answer, not something to retry until the deadline.
 */
function waitConnected(client: grpc.Client, deadline: number, callback: (err: Error | null) => void): void {
  const channel = client.getChannel();
  const check = (): void => {
    const state = channel.getConnectivityState(true);
    if (state === grpc.connectivityState.READY) return callback(null);
    if (state === grpc.connectivityState.TRANSIENT_FAILURE) return callback(new Error('connection failed'));
    if (state === grpc.connectivityState.SHUTDOWN) return callback(new Error('client closed'));
    channel.watchConnectivityState(state, deadline, (err?: Error) => (err ? callback(new Error('timed out')) : check()));
  };
  check();
}

/** Calls onRecord for every record the sidecar sends; lost = records this observer missed just before it. */
export function observeFlows(options: ObserveClientOptions, onRecord: (record: FlowRecord, lost: number) => void): ObserveSession {
  const method = protoMethod(loadProto('sidewall/flows/v1/flows.proto'), OBSERVE_SERVICE, 'Observe');
  const client = new grpc.Client(options.admin, grpc.credentials.createInsecure());
  const request: ObserveRequest = { last: options.last, follow: options.follow, filter: options.filter };
  let cancelled = false;
  let call: grpc.ClientReadableStream<ObserveResponse> | null = null;

  const done = new Promise<void>((resolve, reject) => {
    const finish = (err: ObserveStreamError | null): void => {
      client.close();
      if (err === null || cancelled) resolve();
      else reject(err);
    };
    const connected = (err: Error | null): void => {
      if (cancelled) return finish(null);
      if (err) return finish(new ObserveStreamError(grpc.status.UNAVAILABLE, options.admin, `cannot connect (${err.message}); is the sidecar running and its admin port reachable?`));
      call = client.makeServerStreamRequest<ObserveRequest, ObserveResponse>(
        OBSERVE_PATH,
        method.requestSerialize as (value: ObserveRequest) => Buffer,
        method.responseDeserialize as (bytes: Buffer) => ObserveResponse,
        request,
        metadata(options.token),
        {},
      );
      call.on('data', (response: ObserveResponse) => {
        onRecord(JSON.parse(response.recordJson) as FlowRecord, Number(response.lost ?? 0));
      });
      call.on('error', (error: grpc.ServiceError) => {
        finish(error.code === grpc.status.CANCELLED && cancelled ? null : new ObserveStreamError(error.code, options.admin, error.details));
      });
      call.on('status', (status: grpc.StatusObject) => {
        if (status.code === grpc.status.OK) finish(null);
      });
    };
    waitConnected(client, Date.now() + (options.connectTimeoutMs ?? 5000), connected);
  });
  return {
    done,
    cancel: () => {
      cancelled = true;
      if (call !== null) call.cancel();
      else client.close();
    },
  };
}
