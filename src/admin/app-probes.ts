// The app probes the kubelet can no longer reach directly. The injector points each app
// container's httpGet/tcpSocket probe at the admin port (/app-health/<container>/<kind>) because
// a kubelet probe arrives from the node's IP, which a default-deny policy would refuse; it hands
// the original probes over in SIDEWALL_APP_PROBES (see injector/probes.ts). This module performs
// them against 127.0.0.1 with the kubelet's semantics: HTTP 200–399 is success (redirects are not
// followed), a TCP connect is success, anything else or a timeout is failure. The sidecar runs as
// the proxy uid, which iptables leaves alone, so these connections are not redirected to itself.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { LazyModule } from '../lazy/lazy-module.js';

/** node:https (and with it tls): loaded by the first HTTPS app probe. */
const https = new LazyModule<typeof import('node:https')>('node:https', 'HTTPS app probes');

export type AppProbeSpec =
  | { httpGet: { port: number; path: string; scheme?: 'HTTP' | 'HTTPS'; httpHeaders?: Array<{ name: string; value: string }> }; timeoutSeconds?: number }
  | { tcpSocket: { port: number }; timeoutSeconds?: number };

export interface AppProbeResult {
  status: number;
  body: string;
}

export type AppProbeHandler = (path: string) => Promise<AppProbeResult>;

export class AppProbeConfigError extends Error {
  readonly code = 'SIDEWALL_APP_PROBES';
  constructor(detail: string) {
    super(`SIDEWALL_APP_PROBES is not valid: ${detail}; it is written by the sidewall injector, so re-create the pod with the current webhook`);
    this.name = 'AppProbeConfigError';
  }
}

const PROBE_HOST = '127.0.0.1';
// The kubelet reads at most 10 KiB of a probe response; so do we, then drop the connection.
const MAX_BODY = 10 * 1024;

function isPort(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 65535;
}

function parseProbes(env: string): Map<string, AppProbeSpec> {
  let document: unknown;
  try {
    document = JSON.parse(env);
  } catch (err) {
    throw new AppProbeConfigError(`not JSON (${(err as Error).message})`);
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) throw new AppProbeConfigError('expected a JSON object of path → probe');
  const probes = new Map<string, AppProbeSpec>();
  for (const [path, spec] of Object.entries(document as Record<string, unknown>)) {
    if (!path.startsWith('/app-health/')) throw new AppProbeConfigError(`path '${path}' does not start with /app-health/`);
    const probe = spec as Partial<{ httpGet: { port: unknown; path?: unknown }; tcpSocket: { port: unknown }; timeoutSeconds: unknown }>;
    if (probe?.httpGet !== undefined) {
      if (!isPort(probe.httpGet.port)) throw new AppProbeConfigError(`${path}: httpGet.port must be a port number`);
    } else if (probe?.tcpSocket !== undefined) {
      if (!isPort(probe.tcpSocket.port)) throw new AppProbeConfigError(`${path}: tcpSocket.port must be a port number`);
    } else {
      throw new AppProbeConfigError(`${path}: expected httpGet or tcpSocket`);
    }
    probes.set(path, spec as AppProbeSpec);
  }
  return probes;
}

function timeoutMs(spec: AppProbeSpec): number {
  const seconds = typeof spec.timeoutSeconds === 'number' && spec.timeoutSeconds > 0 ? spec.timeoutSeconds : 1;
  return seconds * 1000;
}

function probeHttp(spec: Extract<AppProbeSpec, { httpGet: unknown }>): Promise<AppProbeResult> {
  const { port, path, scheme, httpHeaders } = spec.httpGet;
  const headers: Record<string, string> = { 'user-agent': 'kube-probe/sidewall', accept: '*/*', host: `${PROBE_HOST}:${port}` };
  for (const header of httpHeaders ?? []) headers[header.name.toLowerCase()] = header.value;
  const target = `${(scheme ?? 'HTTP').toLowerCase()}://${PROBE_HOST}:${port}${path.startsWith('/') ? path : '/' + path}`;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: AppProbeResult): void => {
      if (settled) return;
      settled = true;
      resolve(result);
    };
    const onResponse = (res: IncomingMessage): void => {
      const status = res.statusCode ?? 0;
      let received = 0;
      res.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > MAX_BODY) res.destroy();
      });
      res.on('close', () => {
        if (status >= 200 && status < 400) finish({ status: 200, body: `ok: ${target} answered ${status}\n` });
        else finish({ status: 503, body: `probe failed: ${target} answered ${status}\n` });
      });
    };
    const options = { method: 'GET', headers, timeout: timeoutMs(spec), agent: false as const };
    // The kubelet does not verify the certificate of HTTPS probes; neither do we.
    const req = scheme === 'HTTPS' ? https.get().request(target, { ...options, rejectUnauthorized: false }, onResponse) : httpRequest(target, options, onResponse);
    req.on('timeout', () => {
      req.destroy();
      finish({ status: 503, body: `probe failed: ${target} did not answer within ${timeoutMs(spec)} ms\n` });
    });
    req.on('error', (err: NodeJS.ErrnoException) => finish({ status: 503, body: `probe failed: ${target}: ${err.code ?? err.message}\n` }));
    req.end();
  });
}

function probeTcp(spec: Extract<AppProbeSpec, { tcpSocket: unknown }>): Promise<AppProbeResult> {
  const port = spec.tcpSocket.port;
  return new Promise((resolve) => {
    const socket = connect({ host: PROBE_HOST, port });
    let settled = false;
    const finish = (result: AppProbeResult): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs(spec), () => finish({ status: 503, body: `probe failed: tcp ${PROBE_HOST}:${port} did not connect within ${timeoutMs(spec)} ms\n` }));
    socket.once('connect', () => finish({ status: 200, body: `ok: tcp ${PROBE_HOST}:${port} accepted the connection\n` }));
    socket.once('error', (err: NodeJS.ErrnoException) => finish({ status: 503, body: `probe failed: tcp ${PROBE_HOST}:${port}: ${err.code ?? err.message}\n` }));
  });
}

/**
 * Returns the handler for /app-health/... paths of the admin server, or undefined when the pod
 * has no rewritten probes. Throws AppProbeConfigError when the variable is malformed.
 */
export function createAppProbeHandler(env: string | undefined): AppProbeHandler | undefined {
  if (env === undefined || env.trim() === '') return undefined;
  const probes = parseProbes(env);
  if (probes.size === 0) return undefined;
  return async (requestPath: string): Promise<AppProbeResult> => {
    const path = requestPath.split('?')[0] ?? requestPath;
    const spec = probes.get(path);
    if (spec === undefined) return { status: 404, body: `no app probe is configured for ${path}\n` };
    return 'httpGet' in spec ? probeHttp(spec) : probeTcp(spec);
  };
}
