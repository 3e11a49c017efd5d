import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAppProbeHandler, AppProbeConfigError } from '../../src/admin/app-probes.js';

let app: Server;
let appPort: number;
let closedPort: number;
const seenHeaders: Array<Record<string, string | string[] | undefined>> = [];

beforeAll(async () => {
  app = createServer((req, res) => {
    seenHeaders.push(req.headers);
    if (req.url === '/healthz') res.writeHead(200).end('fine');
    else if (req.url === '/moved') res.writeHead(302, { location: '/elsewhere' }).end();
    else if (req.url === '/slow') setTimeout(() => res.writeHead(200).end(), 3000);
    else res.writeHead(500).end('broken');
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  appPort = (app.address() as AddressInfo).port;
  // A port that was just free: bind, read the number, close.
  const probe = createTcpServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
});

afterAll(async () => {
  app.closeAllConnections();
  await new Promise<void>((resolve) => app.close(() => resolve()));
});

function handlerFor(probes: Record<string, unknown>) {
  const handler = createAppProbeHandler(JSON.stringify(probes));
  if (handler === undefined) throw new Error('expected a handler');
  return handler;
}

describe('app probes performed by the sidecar', () => {
  it('passes an httpGet probe that the app answers with 200 and sends the configured headers', async () => {
    const handler = handlerFor({ '/app-health/web/livez': { httpGet: { port: appPort, path: '/healthz', scheme: 'HTTP', httpHeaders: [{ name: 'X-Probe', value: 'liveness' }] }, timeoutSeconds: 1 } });
    const result = await handler('/app-health/web/livez');
    expect(result.status).toBe(200);
    expect(seenHeaders.at(-1)!['x-probe']).toBe('liveness');
  });

  it('counts a redirect as success without following it, as the kubelet does for another host', async () => {
    const handler = handlerFor({ '/app-health/web/readyz': { httpGet: { port: appPort, path: '/moved', scheme: 'HTTP', httpHeaders: [] }, timeoutSeconds: 1 } });
    expect((await handler('/app-health/web/readyz')).status).toBe(200);
  });

  it('fails an httpGet probe the app answers with 500, a closed port, and a timeout', async () => {
    const handler = handlerFor({
      '/app-health/web/livez': { httpGet: { port: appPort, path: '/error', scheme: 'HTTP', httpHeaders: [] }, timeoutSeconds: 1 },
      '/app-health/web/readyz': { httpGet: { port: closedPort, path: '/healthz', scheme: 'HTTP', httpHeaders: [] }, timeoutSeconds: 1 },
      '/app-health/web/startupz': { httpGet: { port: appPort, path: '/slow', scheme: 'HTTP', httpHeaders: [] }, timeoutSeconds: 1 },
    });
    const error = await handler('/app-health/web/livez');
    expect(error.status).toBe(503);
    expect(error.body).toContain('answered 500');
    const closed = await handler('/app-health/web/readyz');
    expect(closed.status).toBe(503);
    expect(closed.body).toContain('ECONNREFUSED');
    const started = Date.now();
    const slow = await handler('/app-health/web/startupz');
    expect(slow.status).toBe(503);
    expect(slow.body).toContain('did not answer within 1000 ms');
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it('passes a tcpSocket probe on a listening port and fails it on a closed one', async () => {
    const handler = handlerFor({
      '/app-health/db/readyz': { tcpSocket: { port: appPort }, timeoutSeconds: 1 },
      '/app-health/db/livez': { tcpSocket: { port: closedPort }, timeoutSeconds: 1 },
    });
    expect((await handler('/app-health/db/readyz')).status).toBe(200);
    const closed = await handler('/app-health/db/livez');
    expect(closed.status).toBe(503);
    expect(closed.body).toContain(`${closedPort}`);
  });

  it('answers 404 for a path no probe was configured for', async () => {
    const handler = handlerFor({ '/app-health/db/readyz': { tcpSocket: { port: appPort }, timeoutSeconds: 1 } });
    expect((await handler('/app-health/other/readyz')).status).toBe(404);
  });

  it('returns no handler without the variable and refuses a malformed one', () => {
    expect(createAppProbeHandler(undefined)).toBeUndefined();
    expect(createAppProbeHandler('')).toBeUndefined();
    expect(() => createAppProbeHandler('{not json')).toThrow(AppProbeConfigError);
    expect(() => createAppProbeHandler(JSON.stringify({ '/app-health/x/livez': { httpGet: { port: 0, path: '/' } } }))).toThrow(/httpGet.port/);
  });
});
