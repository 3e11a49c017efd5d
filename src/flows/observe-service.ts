// The admin-port flow stream: sidewall.flows.v1.FlowStream/Observe (proto/sidewall/flows/v1/
// flows.proto), a server-streaming gRPC method implemented directly on Node's http2 server,
// because the admin port also speaks HTTP/1.1 and grpc-js's server cannot adopt the sockets the
// admin server sniffs. Wire format per the gRPC over HTTP/2 spec (grpc/grpc
// doc/PROTOCOL-HTTP2.md): each message is a 5-byte prefix (compressed flag, big-endian length)
// plus the protobuf; the status travels in the trailers (grpc-status, grpc-message).
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { entryJson, type FlowEntry } from './entry.js';
import { compileFlowFilter, InvalidFlowFilterError, type FlowFilter, type FlowPredicate } from './flow-filter.js';
import { SubscriberQueue, type ObserveHub, type ObserveSubscriber } from './observe-hub.js';
import { defaultObserveHub } from './pipeline.js';
import { loadProto, protoMethod } from './proto-files.js';
import { metrics } from '../metrics/index.js';

export const OBSERVE_SERVICE = 'sidewall.flows.v1.FlowStream';
export const OBSERVE_PATH = `/${OBSERVE_SERVICE}/Observe`;

/** gRPC status codes used here (grpc/grpc doc/statuscodes.md). */
const GrpcStatus = { OK: 0, INVALID_ARGUMENT: 3, RESOURCE_EXHAUSTED: 8, UNIMPLEMENTED: 12, UNAVAILABLE: 14 } as const;

const MAX_REQUEST_BYTES = 64 * 1024;

export interface ObserveRequest {
  last?: number;
  follow?: boolean;
  filter?: FlowFilter;
}

export interface ObserveResponse {
  recordJson: string;
  seq: string | number;
  lost?: string | number;
}

export interface ObserveHandlerOptions {
  /** Records held per observer that reads slower than records arrive; default 1024. */
  subscriberQueueSize?: number;
}

export type Http2StreamHandler = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void;

function observeMethod() {
  return protoMethod(loadProto('sidewall/flows/v1/flows.proto'), OBSERVE_SERVICE, 'Observe');
}

/** grpc-message: UTF-8, percent-encoding every byte outside 0x20-0x7E and '%' (PROTOCOL-HTTP2.md, "Status-Message"). */
function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function respondError(stream: ServerHttp2Stream, code: number, message: string): void {
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  // A "Trailers-Only" response: the status in the only HEADERS frame.
  stream.respond(
    { ':status': 200, 'content-type': 'application/grpc+proto', 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(message) },
    { endStream: true },
  );
}

function frame(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = 0;
  out.writeUInt32BE(body.length, 1);
  out.set(body, 5);
  return out;
}

/** One Observe call: history, then (with follow) the live tail, with backpressure and loss accounting. */
class ObserveCall implements ObserveSubscriber {
  private readonly queue: SubscriberQueue;
  private awaitingDrain = false;
  private finished = false;
  private unsubscribe: (() => void) | null = null;
  private readonly pumpBound = (): void => this.pump();

  constructor(
    private readonly stream: ServerHttp2Stream,
    readonly matches: FlowPredicate,
    queueSize: number,
    private readonly serialize: (value: ObserveResponse) => Buffer,
  ) {
    this.queue = new SubscriberQueue(queueSize);
    stream.on('drain', this.pumpBound);
    stream.on('close', () => this.release());
    stream.on('error', () => this.release());
  }

  start(hub: ObserveHub, last: number, follow: boolean): void {
    this.stream.respond({ ':status': 200, 'content-type': 'application/grpc+proto' }, { waitForTrailers: true });
    this.stream.on('wantTrailers', () => {
      this.stream.sendTrailers({ 'grpc-status': String(GrpcStatus.OK) });
    });
    // recent() and subscribe() run in one synchronous step: no record can fall between them.
    const history = last > 0 ? hub.recent(last, this.matches) : [];
    for (const entry of history) this.writeEntry(entry, 0);
    if (follow) {
      this.unsubscribe = hub.subscribe(this);
    } else {
      this.end();
    }
  }

  deliver(entry: FlowEntry): void {
    if (this.finished) return;
    this.queue.push(entry);
    if (!this.awaitingDrain) this.pump();
  }

  private pump(): void {
    this.awaitingDrain = false;
    while (this.queue.length > 0 && !this.finished) {
      const entry = this.queue.shift();
      if (entry === undefined) break;
      if (!this.writeEntry(entry, this.queue.takeLost())) {
        this.awaitingDrain = true;
        return;
      }
    }
  }

  private writeEntry(entry: FlowEntry, lost: number): boolean {
    const message: ObserveResponse = { recordJson: entryJson(entry), seq: entry.record.seq, lost };
    metrics.exportSent.inc({ exporter: 'observe' });
    return this.stream.write(frame(this.serialize(message)));
  }

  end(): void {
    if (this.finished) return;
    this.finished = true;
    this.release();
    if (!this.stream.destroyed && !this.stream.closed) this.stream.end();
  }

  private release(): void {
    this.finished = true;
    this.stream.off('drain', this.pumpBound);
    if (this.unsubscribe !== null) {
      this.unsubscribe();
      this.unsubscribe = null;
    }
  }
}

/**
 * Builds the admin-port handler for HTTP/2 streams. Serves OBSERVE_PATH; answers every other path
 * with gRPC UNIMPLEMENTED, so the admin server can hand it every stream.
 */
export function createObserveStreamHandler(hubOf: () => ObserveHub | null, options: ObserveHandlerOptions = {}): Http2StreamHandler {
  const queueSize = options.subscriberQueueSize ?? 1024;
  return (stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void => {
    stream.on('error', () => undefined);
    const contentType = String(headers['content-type'] ?? '');
    if (headers[':method'] !== 'POST' || !contentType.startsWith('application/grpc')) {
      stream.respond({ ':status': 415, 'content-type': 'text/plain' });
      stream.end('the admin HTTP/2 port serves gRPC only (sidewall observe)\n');
      return;
    }
    if (headers[':path'] !== OBSERVE_PATH) {
      respondError(stream, GrpcStatus.UNIMPLEMENTED, `unknown method ${String(headers[':path'])}; this port serves ${OBSERVE_PATH}`);
      return;
    }
    const hub = hubOf();
    if (hub === null) {
      respondError(stream, GrpcStatus.UNAVAILABLE, 'this sidecar keeps no flow ring (ringSize 0) or has no flow pipeline yet');
      return;
    }
    const method = observeMethod();
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_REQUEST_BYTES) chunks.push(chunk);
    });
    stream.on('end', () => {
      if (size > MAX_REQUEST_BYTES) return respondError(stream, GrpcStatus.RESOURCE_EXHAUSTED, `request larger than ${MAX_REQUEST_BYTES} bytes`);
      const body = Buffer.concat(chunks, size);
      if (body.length < 5) return respondError(stream, GrpcStatus.INVALID_ARGUMENT, 'expected one ObserveRequest message');
      if (body[0] !== 0) return respondError(stream, GrpcStatus.UNIMPLEMENTED, 'compressed requests are not supported');
      const length = body.readUInt32BE(1);
      if (length !== body.length - 5) return respondError(stream, GrpcStatus.INVALID_ARGUMENT, 'expected exactly one ObserveRequest message');
      let request: ObserveRequest;
      let matches: FlowPredicate;
      try {
        request = method.requestDeserialize(body.subarray(5)) as ObserveRequest;
        matches = compileFlowFilter(request.filter ?? {});
      } catch (err) {
        const message = err instanceof InvalidFlowFilterError ? err.message : `malformed ObserveRequest: ${err instanceof Error ? err.message : String(err)}`;
        return respondError(stream, GrpcStatus.INVALID_ARGUMENT, message);
      }
      const call = new ObserveCall(stream, matches, queueSize, method.responseSerialize as (value: ObserveResponse) => Buffer);
      call.start(hub, request.last ?? 0, request.follow === true);
    });
  };
}

/** The handler the sidecar's admin server mounts: serves the hub of the sidecar's flow pipeline. */
export const handleObserveStream: Http2StreamHandler = createObserveStreamHandler(defaultObserveHub);
