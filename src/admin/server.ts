// The admin port (15000): health for the kubelet (/live, /ready), Prometheus (/metrics), the
// rewritten app probes (/app-health/...), and the gRPC flow stream. HTTP/1.1 and HTTP/2 (gRPC)
// share the port: the first bytes of a connection say which one it speaks.
// Health, probes and metrics answer everyone; the flow stream, /connections and /learn/model only
// the sidecar's own user or a bearer token (./access.ts, PRODUCT.md "Admin access").
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Http2Server, IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { createReadStream } from 'node:fs';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { metrics } from '../metrics/index.js';
import { markServer } from '../net/socket-mark.js';
import { LazyModule } from '../lazy/lazy-module.js';
import type { AdminAccess, AdminCaller, PeerEndpoints } from './access.js';

export interface Readiness {
  ready: boolean;
  detail: Record<string, unknown>;
}

export interface AdminHandlers {
  readiness: () => Readiness;
  metrics?: () => Promise<string>;
  appProbe?: (path: string) => Promise<{ status: number; body: string }>;
  /** The learning mode's model and status (issue 9), served as JSON at /learn/model. */
  learnModel?: () => unknown;
  /** The open connections, as records (GET /connections). */
  connections?: () => unknown[];
  /** gRPC over HTTP/2 (cleartext); called for every stream the caller may open. */
  grpc?: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void;
  /** Packet captures (src/capture): GET /captures, POST /captures?…, GET|DELETE /captures/ID. */
  captures?: CaptureHandlers;
  /** Decides who may read the private endpoints; unset: everyone may (tests, tools without a pod). */
  access?: AdminAccess;
  /** SO_MARK of the listening sockets: the pod's listener guard delivers only to marked sockets. */
  socketMark?: number;
}

export interface CaptureHandlers {
  list(): unknown[];
  /** Starts an on-demand capture; throws an error with `status` (400, 404, 503) when it cannot. */
  start(request: { flow?: string; rule?: string; peer?: string; durationMs: number }): unknown;
  stop(id: string): unknown;
  /** The pcapng file of a capture (flushed up to now), or undefined. */
  file(id: string): string | undefined;
}

/** Endpoints that show other containers' traffic: the sidecar's own user or a token only. */
const PRIVATE_PATHS = new Set(['/connections', '/learn/model', '/captures']);

function isPrivate(path: string): boolean {
  return PRIVATE_PATHS.has(path) || path.startsWith('/captures/');
}

const CAPTURE_ID = /^\/captures\/([A-Za-z0-9_-]{1,64})$/;

const H2_PREFACE_START = Buffer.from('PRI ');

/** node:http2 (≈3 MiB of RSS with what it pulls in: nghttp2, tls, crypto): loaded by the first HTTP/2 connection (gRPC flow stream). */
export const http2Module = new LazyModule<typeof import('node:http2')>('node:http2', "the admin port's HTTP/2 (the gRPC flow stream)");

export class AdminServer {
  private readonly servers: Server[] = [];
  private readonly http = createHttpServer((req, res) => void this.route(req, res));
  /** Made by the first connection that speaks HTTP/2 (most sidecars never see one). */
  private h2: Http2Server | undefined;
  /** Set when a listening socket could not be marked (no CAP_NET_ADMIN): the pod's guard will drop its connections. */
  markError: Error | undefined;

  constructor(private readonly handlers: AdminHandlers) {
    this.http.keepAliveTimeout = 5_000;
  }

  /** The HTTP/2 server; throws (LazyModuleError) when node:http2 cannot be loaded. */
  private http2Server(): Http2Server {
    if (this.h2 !== undefined) return this.h2;
    const h2 = http2Module.get().createServer();
    h2.on('stream', (stream, headers) => void this.onStream(stream, headers));
    h2.on('sessionError', () => undefined);
    this.h2 = h2;
    return h2;
  }

  async listen(port: number, hosts: string[]): Promise<void> {
    for (const host of hosts) {
      const server = createNetServer((socket) => this.sniff(socket));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ port, host, ipv6Only: host.includes(':') }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      this.servers.push(server);
      if (this.handlers.socketMark !== undefined) {
        try {
          markServer(server, this.handlers.socketMark);
        } catch (err) {
          // Not fatal here: the same failure keeps the proxy's listeners (and so /ready) down, with the reason.
          this.markError ??= err as Error;
        }
      }
    }
  }

  private sniff(socket: Socket): void {
    socket.on('error', () => socket.destroy());
    socket.once('data', (first: Buffer) => {
      socket.pause();
      socket.unshift(first);
      const n = Math.min(first.length, H2_PREFACE_START.length);
      if (first.subarray(0, n).equals(H2_PREFACE_START.subarray(0, n))) {
        // The HTTP/2 session reads what is buffered on the next tick: the socket must stay paused.
        let h2: Http2Server;
        try {
          h2 = this.http2Server();
        } catch {
          // No HTTP/2: the caller gets a closed connection, never another endpoint's answer.
          socket.destroy();
          return;
        }
        h2.emit('connection', socket);
      } else {
        this.http.emit('connection', socket);
        socket.resume();
      }
    });
  }

  /** 'public' for endpoints everyone may read; else who the caller is (counted either way). */
  private async caller(endpoint: string, socket: Socket | undefined, authorization: string | undefined): Promise<AdminCaller> {
    const access = this.handlers.access;
    if (access === undefined) return 'own-user';
    const peer: PeerEndpoints | undefined =
      socket?.remoteAddress !== undefined && socket.localAddress !== undefined
        ? { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort ?? 0, localAddress: socket.localAddress, localPort: socket.localPort ?? 0 }
        : undefined;
    const who = peer === undefined ? 'denied' : await access.authorize(peer, authorization);
    metrics.adminRequests.inc({ endpoint, result: who });
    return who;
  }

  private async onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): Promise<void> {
    stream.on('error', () => undefined);
    const auth = headers.authorization;
    const who = await this.caller('grpc', stream.session?.socket as Socket | undefined, typeof auth === 'string' ? auth : undefined);
    if (stream.destroyed || stream.closed) return;
    if (who === 'denied') {
      // gRPC PERMISSION_DENIED, trailers-only (what grpc-js shows the client as the error).
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '7', 'grpc-message': 'the flow stream is for the sidecar\'s own user or a bearer token (admin.tokenFile)' }, { endStream: true });
      return;
    }
    if (this.handlers.grpc) this.handlers.grpc(stream, headers);
    else stream.respond({ ':status': 404 }, { endStream: true });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const [path = '/', query = ''] = (req.url ?? '/').split('?');
    try {
      if (isPrivate(path) && (await this.caller(path.startsWith('/captures') ? '/captures' : path, req.socket, req.headers.authorization)) === 'denied') {
        return send(res, 403, JSON.stringify({ error: `${path} is for the sidecar's own user (kubectl exec into sidewall-proxy) or a request with the bearer token of admin.tokenFile` }) + '\n', 'application/json');
      }
      if (path === '/live') return send(res, 200, 'live\n');
      if (path === '/ready') {
        const r = this.handlers.readiness();
        return send(res, r.ready ? 200 : 503, JSON.stringify({ ready: r.ready, ...r.detail }) + '\n', 'application/json');
      }
      if (path === '/connections' && this.handlers.connections) return send(res, 200, JSON.stringify(this.handlers.connections()) + '\n', 'application/json');
      if (path === '/metrics' && this.handlers.metrics) return send(res, 200, await this.handlers.metrics(), 'text/plain; version=0.0.4');
      if (path === '/learn/model' && this.handlers.learnModel) return send(res, 200, JSON.stringify(this.handlers.learnModel()) + '\n', 'application/json');
      if ((path === '/captures' || path.startsWith('/captures/')) && this.handlers.captures) return this.routeCaptures(req, res, path, new URLSearchParams(query), this.handlers.captures);
      if (path.startsWith('/app-health/') && this.handlers.appProbe) {
        const probe = await this.handlers.appProbe(path);
        return send(res, probe.status, probe.body);
      }
      send(res, 404, 'not found\n');
    } catch (err) {
      send(res, 500, `${(err as Error).message}\n`);
    }
  }

  private routeCaptures(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams, captures: CaptureHandlers): void {
    const json = (status: number, body: unknown): void => send(res, status, JSON.stringify(body) + '\n', 'application/json');
    if (path === '/captures') {
      if (req.method === 'GET') return json(200, captures.list());
      if (req.method !== 'POST') return json(405, { error: 'GET lists captures, POST starts one' });
      const durationText = query.get('durationMs') ?? '30000';
      const request = {
        durationMs: /^\d{1,10}$/.test(durationText) ? Number(durationText) : NaN,
        ...(query.get('flow') !== null ? { flow: query.get('flow') as string } : {}),
        ...(query.get('rule') !== null ? { rule: query.get('rule') as string } : {}),
        ...(query.get('peer') !== null ? { peer: query.get('peer') as string } : {}),
      };
      try {
        return json(201, captures.start(request));
      } catch (err) {
        const status = (err as { status?: number }).status;
        if (typeof status !== 'number') throw err;
        return json(status, { error: (err as Error).message });
      }
    }
    const id = CAPTURE_ID.exec(path)?.[1];
    if (id === undefined) return json(404, { error: 'no such capture' });
    if (req.method === 'DELETE') {
      const info = captures.stop(id);
      return info === undefined ? json(404, { error: `no capture ${id}` }) : json(200, info);
    }
    if (req.method !== 'GET') return json(405, { error: 'GET fetches a capture, DELETE ends it' });
    const file = captures.file(id);
    if (file === undefined) return json(404, { error: `no capture ${id} (GET /captures lists them)` });
    const stream = createReadStream(file);
    stream.once('error', (err) => {
      if (!res.headersSent) json(404, { error: `capture ${id}: ${err.message}` });
      else res.destroy();
    });
    stream.once('open', () => {
      res.writeHead(200, { 'content-type': 'application/x-pcapng', 'content-disposition': `attachment; filename="${id}.pcapng"` });
      stream.pipe(res);
    });
  }

  async close(): Promise<void> {
    // Close the connections first: server.close() calls back only once they are all gone (a
    // scraper's keep-alive connection would otherwise hold the exit).
    const closed = Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.http.closeAllConnections();
    await closed;
  }
}

function send(res: ServerResponse, status: number, body: string, type = 'text/plain'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
