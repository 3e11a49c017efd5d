// Tunnels, false positives end to end: ordinary long-lived TLS through the sidecar under
// `tunnels: block` never triggers the SSH-in-TLS, carrier or encrypted-stream detectors — no
// alert record, and no connection cut (a false positive would fail the client too):
//   curl downloading 32 MiB over TLS from nginx (HTTP/1.1, rate-limited to last seconds)
//   h2load: 300 requests on one HTTP/2-over-TLS keep-alive connection to nginx, paced
//   a WebSocket over TLS (wss) kept alive with pings and small chat messages both ways, idle
//   between them — keystroke-sized records in both directions, the hard case for SSH-in-TLS
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_UID, NODE, TOOLS, Topology } from '../harness/netns.js';
import { Sidecar } from '../harness/sidecar.js';

const topo = new Topology({ name: 'ty', subnet: 169 });
const peer = topo.peerIp;
const BIG = 32 << 20;
const sidecar = new Sidecar(topo);

beforeAll(async () => {
  topo.create();
  const dir = topo.dir;
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  topo.exec(topo.peerNs, 'openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=www.example.test']);
  topo.exec(topo.peerNs, 'mkdir', ['-p', join(dir, 'www')]);
  topo.exec(topo.peerNs, 'sh', ['-c', `head -c ${BIG} /dev/urandom > ${join(dir, 'www', 'big.bin')}`]);
  writeFileSync(join(dir, 'www', 'item.json'), JSON.stringify({ id: 1, name: 'widget', tags: ['a', 'b'], price: 12.5 }));
  const conf = `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  default_type application/octet-stream;
  keepalive_requests 10000;
  server { listen ${peer}:443 ssl http2; server_name www.example.test; ssl_certificate ${cert}; ssl_certificate_key ${key}; root ${dir}/www; }
}
`;
  topo.start(topo.peerNs, 'nginx', ['-c', topo.writeFile('nginx.conf', conf)]);
  topo.start(topo.peerNs, NODE, [join(TOOLS, 'tls-ws.mjs'), 'server', peer, '8443', cert, key]);
  await topo.listening(topo.peerNs, [443, 8443]);
  new Sidecar(topo).init([]);
  await sidecar.start('mode: protect\ndefaultAction: allow\ntunnels: block\nports:\n  "443": tls\n  "8443": tls\n');
}, 90_000);

afterAll(async () => {
  await sidecar.teardown(); // every accepted connection ended in exactly one final record
  await topo.destroy();
});

const alerts = () => sidecar.records.filter((r) => r.type === 'alert');

describe('benign long-lived TLS under tunnels: block', () => {
  it('curl downloads 32 MiB over TLS from nginx, no alert', async () => {
    const r = await topo.execAsync(topo.podNs, 'curl', ['-sk', '--http1.1', '--limit-rate', '8M', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', `https://${peer}/big.bin`, '--resolve', `www.example.test:443:${peer}`], { uid: APP_UID });
    expect(r.stdout).toBe(`200 ${BIG}`);
    await sidecar.waitForRecord((x) => x.type === 'connection' && x.dst.port === 443, 10_000);
    expect(alerts()).toEqual([]);
  }, 60_000);

  it('h2load: 300 requests on one HTTP/2-over-TLS keep-alive connection, no alert', async () => {
    const seq = sidecar.records.at(-1)?.seq ?? -1;
    const r = await topo.execAsync(topo.podNs, 'h2load', ['-n', '300', '-c', '1', '-m', '1', '--rps', '100', `https://${peer}/item.json`], { uid: APP_UID });
    expect(r.stdout, r.stdout + r.stderr).toContain('300 succeeded');
    expect(r.stdout).toContain('h2'); // ALPN chose HTTP/2
    await sidecar.waitForRecord((x) => x.seq > seq && x.type === 'connection' && x.dst.port === 443, 10_000);
    expect(alerts()).toEqual([]);
  }, 60_000);

  it('a WebSocket over TLS kept alive with pings and chat messages both ways, no alert', async () => {
    const r = await topo.execAsync(topo.podNs, NODE, [join(TOOLS, 'tls-ws.mjs'), 'client', peer, '8443', '40', '100'], { uid: APP_UID });
    expect(r.stdout.trim(), r.stdout + r.stderr).toBe('ok 40');
    const record = await sidecar.waitForRecord((x) => x.type === 'connection' && x.dst.port === 8443, 10_000);
    expect(record.verdict).not.toBe('denied');
    expect(alerts()).toEqual([]);
  }, 60_000);
});
