// Services end to end (issue 20). The app calls Services by their cluster IPs; a "node" DNAT
// does what kube-proxy does: in the peer namespace (standing for the node the packet enters and
// the pods behind it), nat PREROUTING rewrites cluster IP:80 to the chosen pod IP:8080 — after the
// packet left the pod, so the sidecar sees only the cluster IP, and it is the sidecar's own
// upstream connection that is translated. Services, EndpointSlices and Pods come from a local
// server speaking the Kubernetes list/watch protocol, through the controller, to the sidecar.
// Each backend "pod" is Python's http.server on its own pod IP, logging every request it runs:
// a block is proved from the server's side (no log line), with an allowed marker request after it.
import { chmodSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdentityController } from '../../src/controller/identity-controller.js';
import { APP_UID, CLI, NODE, PROXY_UID, TOOLS, Topology } from '../harness/netns.js';
import { Sidecar } from '../harness/sidecar.js';
import { assertValidFlowRecords } from '../unit/flows/flow-schema.js';
import { FakeApiServer, makePod, makeService, makeSlice } from '../unit/identity/fake-apiserver.js';
import { silentLog, waitUntil } from '../unit/identity/helpers.js';

const topo = new Topology({ name: 'sv', subnet: 144 });
const sidecar = new Sidecar(topo);
const api = new FakeApiServer();
let controller: IdentityController;
const socket = join(topo.dir, 'identity.sock');

// Pods (peer namespace addresses) and the Services in front of them.
const PODS = { payments: topo.peerIp, admin: '10.77.144.3', catalogA: '10.77.144.4', catalogB: '10.77.144.5' } as const;
const VIPS = { payments: '10.96.144.10', admin: '10.96.144.11', catalog: '10.96.144.12', metrics: '10.96.144.13' } as const;
const UDP_PORT = 8125;
const udpSeen: string[] = [];
const TARGET = 8080;
const seen: { payments: string[]; admin: string[]; catalogA: string[]; catalogB: string[] } = { payments: [], admin: [], catalogA: [], catalogB: [] };

const CONFIG = `mode: protect
defaultAction: deny
tunnels: off
identity:
  controller: unix:${socket}
rules:
  - id: call-payments
    action: allow
    direction: egress
    peer: { service: shop/payments }
    ports: [80]
  - id: admin-marker-only
    action: allow
    direction: egress
    peer: { namespace: shop, service: admin }
    http: { paths: [/marker] }
  - id: catalog-by-labels
    action: allow
    direction: egress
    peer: { namespace: shop, labels: { app: catalog } }
    ports: [80]
  - id: udp-to-metrics
    action: allow
    direction: egress
    protocol: udp
    peer: { service: shop/metrics }
    ports: [${UDP_PORT}]
`;

/** kube-proxy's part: DNAT of a cluster IP:80 to a pod IP:8080 on the "node" (random among endpoints, as kube-proxy does). */
function nodeDnat(vip: string, pods: string[]): void {
  pods.forEach((pod, i) => {
    const left = pods.length - i;
    const pick = left > 1 ? ['-m', 'statistic', '--mode', 'random', '--probability', (1 / left).toFixed(5)] : [];
    topo.exec(topo.peerNs, 'iptables', ['-t', 'nat', '-A', 'PREROUTING', '-d', vip, '-p', 'tcp', '--dport', '80', ...pick, '-j', 'DNAT', '--to-destination', `${pod}:${TARGET}`]);
  });
}

async function backend(name: keyof typeof seen, ip: string): Promise<void> {
  const server = topo.start(topo.peerNs, '/usr/bin/python3', ['-u', join(TOOLS, 'h1-python-server.py'), ip, String(TARGET), topo.dir]);
  server.stdout?.setEncoding('utf8').on('data', (d: string) => {
    for (const line of d.split('\n')) if (line.startsWith('seen ')) seen[name].push(line);
  });
  // It prints nothing before its first request: wait until it accepts a connection.
  await waitUntil(() => topo.exec(topo.peerNs, 'sh', ['-c', `ss -Hltn 'sport = :${TARGET}' | grep -q '${ip}:'`]).status === 0, `${name} listening`, 10_000);
}

async function get(vip: string, path: string): Promise<string> {
  const r = await topo.execAsync(topo.podNs, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', `http://${vip}${path}`], { uid: APP_UID });
  return r.stdout;
}

async function sidecarVersion(): Promise<number> {
  const r = await topo.execAsync(topo.podNs, 'curl', ['-s', 'http://127.0.0.1:15000/ready']);
  return (JSON.parse(r.stdout) as { identity?: { version?: number } }).identity?.version ?? -1;
}

async function inSync(): Promise<void> {
  for (let i = 0; i < 100 && (await sidecarVersion()) !== controller.index.version; i++) await new Promise((r) => setTimeout(r, 50));
  expect(await sidecarVersion()).toBe(controller.index.version);
}

const lastSeq = () => sidecar.records.at(-1)?.seq ?? 0;

beforeAll(async () => {
  topo.create();
  for (const ip of [PODS.admin, PODS.catalogA, PODS.catalogB]) topo.addPeerAddress(ip);
  // The pod reaches the service CIDR through the "node".
  topo.exec(topo.podNs, 'ip', ['route', 'add', '10.96.144.0/24', 'via', topo.peerIp]);
  nodeDnat(VIPS.payments, [PODS.payments]);
  nodeDnat(VIPS.admin, [PODS.admin]);
  nodeDnat(VIPS.catalog, [PODS.catalogA, PODS.catalogB]);
  // A UDP Service (statsd-like) in front of the payments pod, and the admin Service's cluster IP
  // on the same port: the node DNATs both to the pod's UDP server, which logs every datagram.
  for (const v of [VIPS.metrics, VIPS.admin]) topo.exec(topo.peerNs, 'iptables', ['-t', 'nat', '-A', 'PREROUTING', '-d', v, '-p', 'udp', '--dport', String(UDP_PORT), '-j', 'DNAT', '--to-destination', `${PODS.payments}:${UDP_PORT}`]);
  const udp = topo.start(topo.peerNs, NODE, [join(TOOLS, 'seal-udp.mjs'), 'listen', String(UDP_PORT)]);
  udp.stdout?.setEncoding('utf8').on('data', (d: string) => {
    for (const line of d.split('\n')) if (line.startsWith('seen ')) udpSeen.push(line);
  });
  await waitUntil(() => topo.exec(topo.peerNs, 'sh', ['-c', `ss -Hlun 'sport = :${UDP_PORT}' | grep -q .`]).status === 0, 'the UDP server', 10_000);
  await Promise.all([backend('payments', PODS.payments), backend('admin', PODS.admin), backend('catalogA', PODS.catalogA), backend('catalogB', PODS.catalogB)]);

  await api.start();
  api.addNamespace('shop');
  api.addPod(makePod('shop', 'payments-1', PODS.payments, { app: 'payments' }, { serviceAccount: 'payments' }));
  api.addPod(makePod('shop', 'admin-1', PODS.admin, { app: 'admin' }, { serviceAccount: 'admin' }));
  api.addPod(makePod('shop', 'catalog-a', PODS.catalogA, { app: 'catalog', track: 'stable' }, { serviceAccount: 'catalog' }));
  api.addPod(makePod('shop', 'catalog-b', PODS.catalogB, { app: 'catalog', track: 'stable' }, { serviceAccount: 'catalog' }));
  api.putObject(makeService('shop', 'payments', [VIPS.payments], [{ port: 80, targetPort: TARGET }], { app: 'payments' }));
  api.putObject(makeSlice('shop', 'payments-1', 'payments', [[PODS.payments, true]]));
  api.putObject(makeService('shop', 'admin', [VIPS.admin], [{ port: 80, targetPort: TARGET }], { app: 'admin' }));
  api.putObject(makeSlice('shop', 'admin-1', 'admin', [[PODS.admin, true]]));
  api.putObject(makeService('shop', 'metrics', [VIPS.metrics], [{ port: UDP_PORT }], { app: 'payments' }));
  api.putObject(makeSlice('shop', 'metrics-1', 'metrics', [[PODS.payments, true]]));
  api.putObject(makeService('shop', 'catalog', [VIPS.catalog], [{ port: 80, targetPort: TARGET }], { app: 'catalog' }));
  api.putObject(makeSlice('shop', 'catalog-1', 'catalog', [[PODS.catalogA, true], [PODS.catalogB, true]]));
  controller = new IdentityController({ kubeConfig: api.kubeConfig(), log: silentLog, auth: 'none', batchMs: 5, heartbeatMs: 1000 });
  rmSync(socket, { force: true });
  await controller.start(`unix://${socket}`, grpc.ServerCredentials.createInsecure());
  chmodSync(socket, 0o777); // the proxy runs as uid 1337
  await controller.whenSynced();

  sidecar.init();
  await sidecar.start(CONFIG);
  await inSync();
}, 90_000);

afterAll(async () => {
  // Every accepted connection ended in exactly one final record (throws with the numbers if not).
  await sidecar.stopAndCheckRecords();
  await controller?.close();
  await api.close();
  await topo.destroy();
});

describe('calls to Services by cluster IP', () => {
  it('an allowed Service answers from its pod (through the node DNAT), and the record names the Service and its workload', async () => {
    const before = lastSeq();
    expect(await get(VIPS.payments, '/index-payments')).toBe('404'); // http.server: no such file, but it ran the request
    expect(seen.payments.some((l) => l.includes('GET /index-payments'))).toBe(true);
    const record = await sidecar.waitForRecord((r) => r.type === 'connection' && r.seq > before && r.dst.ip === VIPS.payments);
    expect(record).toMatchObject({
      verdict: 'allowed',
      ruleId: 'call-payments',
      dst: { ip: VIPS.payments, port: 80, service: { namespace: 'shop', name: 'payments' }, workload: { namespace: 'shop', pod: 'payments-1', labels: { app: 'payments' }, serviceAccount: 'payments' } },
    });
    assertValidFlowRecords([record]);
  });

  it('a denied call to a Service never reaches its pod (server log), and the verdict names the Service', async () => {
    const before = lastSeq();
    expect(await get(VIPS.admin, '/secret')).toBe('403');
    expect(await get(VIPS.admin, '/marker')).toBe('404');
    // Python logs requests in order: the marker is there, the denied request never was.
    await waitUntil(() => seen.admin.some((l) => l.includes('GET /marker')), 'the marker in the admin log');
    expect(seen.admin.filter((l) => l.includes('/secret'))).toEqual([]);
    const denied = await sidecar.waitForRecord((r) => r.type === 'request' && r.seq > before && r.verdict === 'denied');
    expect(denied).toMatchObject({ ruleId: 'default', dst: { ip: VIPS.admin, service: { namespace: 'shop', name: 'admin' } }, l7: { path: '/secret' } });
    const allowed = await sidecar.waitForRecord((r) => r.type === 'request' && r.seq > before && r.verdict === 'allowed');
    expect(allowed).toMatchObject({ ruleId: 'admin-marker-only', dst: { service: { namespace: 'shop', name: 'admin' } } });
    assertValidFlowRecords([denied, allowed]);
  });

  it('a label rule opens a Service only while every ready endpoint matches (a rollout changing labels closes it)', async () => {
    expect(await get(VIPS.catalog, '/before')).toBe('404');
    const logged = () => [...seen.catalogA, ...seen.catalogB];
    expect(logged().some((l) => l.includes('/before'))).toBe(true);
    // One endpoint's pod is relabelled (a canary): the Service's endpoints no longer all match.
    api.updatePod('shop', 'catalog-b', (p) => (p.metadata.labels = { app: 'catalog-canary' }));
    await waitUntil(() => controller.index.get(PODS.catalogB)?.labels?.app === 'catalog-canary', 'the controller to see the relabel');
    await inSync();
    const before = lastSeq();
    expect(await get(VIPS.catalog, '/during')).toBe('000'); // reset at accept: the connection is refused by rule
    const record = await sidecar.waitForRecord((r) => r.type === 'connection' && r.seq > before && r.dst.ip === VIPS.catalog);
    expect(record).toMatchObject({ verdict: 'denied', ruleId: 'default', dst: { service: { namespace: 'shop', name: 'catalog' }, workload: { namespace: 'shop', serviceAccount: 'catalog', labels: {} } } });
    // The rollout finishes: both endpoints carry the label again.
    api.updatePod('shop', 'catalog-b', (p) => (p.metadata.labels = { app: 'catalog', track: 'canary' }));
    await waitUntil(() => controller.index.get(PODS.catalogB)?.labels?.app === 'catalog', 'the controller to see the second relabel');
    await inSync();
    expect(await get(VIPS.catalog, '/after')).toBe('404');
    await waitUntil(() => logged().some((l) => l.includes('/after')), 'the marker in a catalog log');
    expect(logged().filter((l) => l.includes('/during'))).toEqual([]);
    const after = await sidecar.waitForRecord((r) => r.type === 'connection' && r.seq > before && r.dst.ip === VIPS.catalog && r.verdict === 'allowed');
    expect(after).toMatchObject({ ruleId: 'catalog-by-labels', dst: { workload: { labels: { app: 'catalog' } } } });
  });

  it('a UDP Service: the non-TCP guard lets datagrams to the allowed Service through and drops those to another (server log)', async () => {
    const send = (vip: string, payload: string) => topo.execAsync(topo.podNs, NODE, [join(TOOLS, 'seal-udp.mjs'), 'send', vip, String(UDP_PORT), payload, '', '1500'], { uid: APP_UID });
    const before = lastSeq();
    expect((await send(VIPS.admin, 'to-admin')).stdout).toContain('no-answer');
    expect((await send(VIPS.metrics, 'to-metrics')).stdout).toContain('pong:to-metrics');
    // The server logs datagrams in order: the allowed one is there, the denied one never came.
    expect(udpSeen.some((l) => l.endsWith(' to-metrics'))).toBe(true);
    expect(udpSeen.filter((l) => l.includes('to-admin'))).toEqual([]);
    const allowed = await sidecar.waitForRecord((r) => r.seq > before && r.protocol === 'udp' && r.dst.ip === VIPS.metrics);
    expect(allowed).toMatchObject({ verdict: 'allowed', ruleId: 'udp-to-metrics', dst: { service: { namespace: 'shop', name: 'metrics' } } });
    const denied = await sidecar.waitForRecord((r) => r.seq > before && r.protocol === 'udp' && r.dst.ip === VIPS.admin);
    expect(denied).toMatchObject({ verdict: 'denied', dst: { service: { namespace: 'shop', name: 'admin' } } });
    assertValidFlowRecords([allowed, denied]);
  });

  it('observe filters by Service', async () => {
    // As the sidecar's own user (kubectl exec into sidewall-proxy): the flow stream answers it.
    const r = await topo.execAsync(topo.podNs, NODE, [CLI, 'observe', '--service', 'shop/admin', '-o', 'json', '--last', '50'], { uid: PROXY_UID });
    const lines = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { dst: { service?: { name: string } } });
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines.every((l) => l.dst.service?.name === 'admin')).toBe(true);
  });
});
