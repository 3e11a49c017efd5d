// Tunnels, false positives end to end: ordinary long-lived TLS through the sidecar under
// `tunnels: block` never triggers the SSH-in-TLS, carrier or encrypted-stream detectors — no
// alert record, and no connection cut (a false positive would fail the client too):
//   curl downloading 32 MiB over TLS from nginx (HTTP/1.1, rate-limited to last seconds)
//   h2load: 300 requests on one HTTP/2-over-TLS keep-alive connection to nginx, paced
//   a WebSocket over TLS (wss) kept alive with pings and small chat messages both ways, idle
//   between them — keystroke-sized records in both directions, the hard case for SSH-in-TLS
//   gRPC over TLS (grpc-js client and server): one bidirectional streaming call held open for
//   150 chat- and keystroke-sized messages each way, paced
//   HTTP/2 server push over TLS (node:http2 pushStream): 40 pages on one connection, each with
//   five pushed resources
//   PostgreSQL over TLS (psql sslmode=require against postgres 15 with ssl=on): one session of
//   300 small queries, paced
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_UID, NODE, TOOLS, Topology, waitForLine } from '../harness/netns.js';
import { Sidecar } from '../harness/sidecar.js';

const topo = new Topology({ name: 'ty', subnet: 169 });
const peer = topo.peerIp;
const BIG = 32 << 20;
const sidecar = new Sidecar(topo);
const PG_BIN = '/usr/lib/postgresql/15/bin';
const BENIGN = join(TOOLS, 'benign-tls.mjs');
let pgLog = '';

beforeAll(async () => {
  topo.create();
  const dir = topo.dir;
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  topo.exec(topo.peerNs, 'openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=www.example.test', '-addext', 'subjectAltName=DNS:www.example.test']);
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
  for (const [what, port] of [['grpc-server', '50443'], ['push-server', '8444']] as const) {
    await waitForLine(topo.start(topo.peerNs, NODE, [BENIGN, what, peer, port, cert, key]), (l) => l === 'listening', 20_000, what);
  }
  // PostgreSQL 15 with ssl=on (its own key: the server refuses a key others can read).
  const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const pg = join(dir, 'pg');
  mkdirSync(pg);
  spawnSync('chown', [String(uid), pg]);
  const init = topo.exec(topo.peerNs, `${PG_BIN}/initdb`, ['-D', join(pg, 'db'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C'], { uid });
  if (init.status !== 0) throw new Error(`initdb: ${init.stderr}`);
  const pgCert = join(pg, 'server.crt');
  const pgKey = join(pg, 'server.key');
  topo.exec(topo.peerNs, 'openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=db', '-keyout', pgKey, '-out', pgCert]);
  spawnSync('chown', [String(uid), pgCert, pgKey]);
  chmodSync(pgKey, 0o600);
  writeFileSync(join(pg, 'db', 'pg_hba.conf'), 'local all all trust\nhostssl all all 0.0.0.0/0 trust\n');
  const server = topo.start(topo.peerNs, `${PG_BIN}/postgres`, ['-D', join(pg, 'db'), '-c', `listen_addresses=${peer}`, '-c', 'port=5432', '-c', `unix_socket_directories=${pg}`,
    '-c', 'log_connections=on', '-c', 'logging_collector=off', '-c', 'ssl=on', '-c', `ssl_cert_file=${pgCert}`, '-c', `ssl_key_file=${pgKey}`, '-c', 'fsync=off', '-c', 'shared_buffers=16MB'], { uid });
  server.stderr?.setEncoding('utf8').on('data', (d: string) => (pgLog += d));
  await topo.listening(topo.peerNs, [443, 8443, 5432]);
  const setup = topo.exec(topo.peerNs, 'psql', ['-X', '-q', '-h', pg, '-U', 'postgres', '-c', 'CREATE ROLE app LOGIN', '-c', 'CREATE DATABASE shop OWNER app']);
  if (setup.status !== 0) throw new Error(`setup: ${setup.stderr}`);
  const queries = Array.from({ length: 300 }, (_, i) => (i % 10 === 9 ? 'SELECT pg_sleep(0.05);' : `SELECT ${i} AS n, md5('row ${i}') AS h, now();`)).join('\n');
  writeFileSync(join(dir, 'queries.sql'), `${queries}\n`);
  new Sidecar(topo).init([]);
  await sidecar.start('mode: protect\ndefaultAction: allow\ntunnels: block\nports:\n  "443": tls\n  "8443": tls\n  "8444": tls\n  "50443": tls\n  "5432": postgres\n');
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

  it('gRPC over TLS: one bidirectional streaming call of 150 small messages each way, no alert', async () => {
    const r = await topo.execAsync(topo.podNs, NODE, [BENIGN, 'grpc-client', peer, '50443', join(topo.dir, 'cert.pem'), '150', '20'], { uid: APP_UID });
    expect(r.stdout.trim(), r.stdout + r.stderr).toBe('ok 150');
    const record = await sidecar.waitForRecord((x) => x.type === 'connection' && x.dst.port === 50443, 10_000);
    expect(record.verdict).not.toBe('denied');
    expect(alerts()).toEqual([]);
  }, 60_000);

  it('HTTP/2 server push over TLS: 40 pages with five pushed resources each on one connection, no alert', async () => {
    const r = await topo.execAsync(topo.podNs, NODE, [BENIGN, 'push-client', peer, '8444', join(topo.dir, 'cert.pem'), '40'], { uid: APP_UID });
    expect(r.stdout.trim(), r.stdout + r.stderr).toBe('ok 40 200');
    const record = await sidecar.waitForRecord((x) => x.type === 'connection' && x.dst.port === 8444, 10_000);
    expect(record.verdict).not.toBe('denied');
    expect(alerts()).toEqual([]);
  }, 60_000);

  it('PostgreSQL over TLS: psql sslmode=require, 300 queries in one session, no alert', async () => {
    // HOME: libpq looks for a client certificate under it (root's is not readable by uid 1000).
    const r = await topo.execAsync(topo.podNs, 'env', [`HOME=${topo.dir}`, 'PGCONNECT_TIMEOUT=5', 'psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-f', join(topo.dir, 'queries.sql'), `host=${peer} user=app dbname=shop sslmode=require`], { uid: APP_UID });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.split('\n').filter((l) => /^\d+\|[0-9a-f]{32}\|/.test(l))).toHaveLength(270);
    // The server's own log: the session was encrypted (hostssl is the only way in).
    expect(pgLog).toMatch(/connection authorized: user=app database=shop .*SSL enabled/);
    await sidecar.waitForRecord((x) => x.type === 'connection' && x.dst.port === 5432, 10_000);
    expect(alerts()).toEqual([]);
  }, 60_000);
});
