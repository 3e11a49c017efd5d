// Learning mode end to end (issue 9): real clients (curl, grpc-js, dig, openssl) through the
// sidecar in learn mode; rules generated with `sidewall policy learn` from the running sidecar's
// admin port; the pod switched to protect through its annotations (no restart); the same kinds of
// traffic pass, new behaviour is denied with an alert whose rule, pasted, allows it.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { APP_UID, CLI, NODE, PROXY_UID, TOOLS, Topology } from '../harness/netns.js';
import { Sidecar, type FlowRecordLine } from '../harness/sidecar.js';
import { assertValidFlowRecords } from '../unit/flows/flow-schema.js';

const topo = new Topology({ name: 'ln', subnet: 90 });
const sidecar = new Sidecar(topo);
const peer = topo.peerIp;
const newPeer = `10.77.90.3`;
const podInfo = join(topo.dir, 'pod');
const stateDir = join(topo.dir, 'state');
const stateFile = join(stateDir, 'learn.json');

const CONFIG = `
mode: monitor
defaultAction: deny
tunnels: off
podInfo: ${podInfo}
learn: { stateFile: ${stateFile}, saveIntervalMs: 300 }
identities:
  - { ip: ${peer}, namespace: shop, pod: backend-0, labels: { app: backend, pod-template-hash: 5d8c9 } }
`;

const l7 = (r: FlowRecordLine) => (r.l7 ?? {}) as Record<string, unknown>;
const curl = (args: string[]) => topo.execAsync(topo.podNs, 'curl', ['-s', '--max-time', '5', ...args], { uid: APP_UID });
const status = async (url: string, method = 'GET') => (await curl(['-X', method, '-o', '/dev/null', '-w', '%{http_code}', url])).stdout;
const grpcCalls = (target: string, ...calls: string[]) => topo.execAsync(topo.podNs, NODE, [join(TOOLS, 'grpc-client.mjs'), target, ...calls], { uid: APP_UID });
const dig = (name: string) => topo.execAsync(topo.podNs, 'dig', ['+tries=1', '+time=3', name, 'A'], { uid: APP_UID });
const tlsTo = (sni: string) => topo.exec(topo.podNs, 'openssl', ['s_client', '-connect', `${peer}:443`, '-servername', sni, '-quiet'], { uid: APP_UID, input: '' });
const policy = (...args: string[]) => topo.execAsync(topo.podNs, NODE, [CLI, 'policy', ...args]);

/** The downward API `annotations` file (Go-quoted values; JSON quoting agrees for this text). */
function writeAnnotations(annotations: Record<string, string>): void {
  const lines = Object.keys(annotations).sort().map((k) => `${k}=${JSON.stringify(annotations[k])}`);
  writeFileSync(join(podInfo, 'annotations'), lines.join('\n') + '\n');
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`${what}: not within ${timeoutMs} ms; sidecar stderr: ${sidecar.stderr.slice(-1500)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function switchMode(annotations: Record<string, string>, mode: string): Promise<void> {
  const reloads = () => sidecar.stderr.split('\n').filter((l) => l.includes('rules reloaded'));
  const before = reloads().length;
  writeAnnotations(annotations);
  await waitFor(() => reloads().length > before && reloads().at(-1)!.includes(`"mode":"${mode}"`), `reload into ${mode}`);
}

const alerts = (pred: (r: FlowRecordLine) => boolean) => sidecar.records.filter((r) => r.type === 'alert' && typeof r.suggestion === 'object' && pred(r));

/** Varied traffic of one kind, with fresh ids each time. */
async function typicalTraffic(ids: number[]): Promise<void> {
  for (const id of ids) {
    expect(await status(`http://${peer}/api/users/${id}/orders`)).toBe('200');
    expect(await status(`http://${peer}/api/users/${id}`)).toBe('200');
  }
  expect(await status(`http://${peer}/api/orders`, 'POST')).toBe('200');
  const g = await grpcCalls(`${peer}:50051`, `SayHello:u${ids[0]}`, `StreamHellos:v${ids[0]}`);
  expect(g.stdout.trim().split('\n')).toEqual([`SayHello ok hello u${ids[0]}`, `StreamHellos ok hello v${ids[0]} #0|hello v${ids[0]} #1|hello v${ids[0]} #2`]);
  for (const name of ['www.example.com', 'api.example.com']) expect((await dig(name)).stdout).toContain('status: NOERROR');
  for (const sni of ['allowed.example.com', 'api.example.com']) expect(tlsTo(sni).stdout).toContain(`tls ok ${sni}`);
}

let annotation: Record<string, string> = {};

beforeAll(async () => {
  topo.create();
  topo.addPeerAddress(newPeer);
  topo.setPodResolver(peer);
  mkdirSync(podInfo, { recursive: true });
  mkdirSync(stateDir, { recursive: true });
  chmodSync(stateDir, 0o777); // the proxy runs as uid 1337; in a pod this is its writable volume
  writeFileSync(join(podInfo, 'name'), 'app-0');
  writeFileSync(join(podInfo, 'namespace'), 'test');
  writeAnnotations({ 'sidewall.io/mode': 'learn' });
  await topo.startL7Servers();
  sidecar.init(['--redirect-dns']);
  await sidecar.start(CONFIG);
}, 90_000);

afterAll(async () => {
  try {
    await sidecar.teardown(); // every accepted connection ended in exactly one final record (throws with the numbers)
  } finally {
    await topo.destroy();
  }
});

describe('learn → generated rules → protect', () => {
  it('learns varied traffic (REST ids, gRPC, DNS, TLS to several SNIs) and keeps it across a crash and restart', async () => {
    await typicalTraffic([101, 102, 103, 4711]);
    await sidecar.waitForRecord((r) => r.type === 'connection' && r.protocol === 'tls' && l7(r).sni === 'api.example.com');
    await waitFor(() => {
      try {
        return (JSON.parse(readFileSync(stateFile, 'utf8')) as { observed: number }).observed >= 15;
      } catch {
        return false;
      }
    }, 'the state file');
    expect(sidecar.records.some((r) => r.verdict === 'denied')).toBe(false); // learn mode lets everything pass
    // A crash, not a drain: what survives is what the periodic save wrote.
    await sidecar.stop('SIGKILL');
    await sidecar.start(CONFIG);
    // The learned model is for the sidecar's own user (kubectl exec into sidewall-proxy).
    const model = JSON.parse((await topo.execAsync(topo.podNs, 'curl', ['-s', 'http://127.0.0.1:15000/learn/model'], { uid: PROXY_UID })).stdout) as { services: Array<{ family: string }>; status: { mode: string } };
    expect(model.status.mode).toBe('learn');
    expect(new Set(model.services.map((s) => s.family))).toEqual(new Set(['http', 'grpc', 'dns', 'tls']));
  }, 60_000);

  it('generates rules from the running sidecar that pass policy check', async () => {
    const learned = await topo.execAsync(topo.podNs, NODE, [CLI, 'policy', 'learn', '--from', 'http://127.0.0.1:15000', '-o', 'annotation', '--lock'], { uid: PROXY_UID });
    expect(learned.status, learned.stderr).toBe(0);
    annotation = parse(learned.stdout) as Record<string, string>;
    expect(annotation['sidewall.io/mode']).toBe('protect');
    const rules = parse(annotation['sidewall.io/rules']!) as Array<Record<string, unknown>>;
    // Typical traffic → few rules: GET paths, POST paths, gRPC, DNS, TLS.
    expect(rules.length).toBe(5);
    const get = rules.find((r) => (r.http as { methods?: string[] } | undefined)?.methods?.join() === 'GET');
    expect(get).toMatchObject({ direction: 'egress', peer: { namespace: 'shop', labels: { app: 'backend' } }, ports: [80], http: { paths: ['/api/users/*', '/api/users/*/orders'] } });
    expect(rules.find((r) => r.grpc !== undefined)?.grpc).toEqual({ services: ['test.Greeter'], methods: ['SayHello', 'StreamHellos'] });
    expect((rules.find((r) => r.dns !== undefined)?.dns as { names: string[] }).names).toEqual(['api.example.com', 'www.example.com']);
    expect((rules.find((r) => r.tls !== undefined)?.tls as { sni: string[] }).sni).toEqual(['allowed.example.com', 'api.example.com']);
    for (const r of rules) expect(r.description).toMatch(/^learned: \d+ \w+, first seen .+Z, last seen .+Z$/);
    const file = topo.writeFile('learned.yaml', annotation['sidewall.io/rules']!);
    const checked = await policy('check', file);
    expect(checked.stdout).toMatch(/^ok: 5 rules, policy [0-9a-f]{12}$/m);
  }, 30_000);

  it('switches to protect without a restart: learned kinds of traffic pass, new ids included', async () => {
    const pid = sidecar.process?.pid;
    await switchMode(annotation, 'protect');
    await typicalTraffic([999, 31337]);
    expect(sidecar.process?.pid).toBe(pid);
    expect(sidecar.records.filter((r) => r.type === 'alert')).toEqual([]);
  }, 60_000);

  it('denies new behaviour with an alert naming the rule that would allow it', async () => {
    expect(await status(`http://${peer}/admin/panel`)).toBe('403'); // a new path shape
    const g = await grpcCalls(`${peer}:50051`, 'SayGoodbye:x'); // a new gRPC method
    expect(g.stdout.trim()).toBe('SayGoodbye error 7');
    expect((await dig('exfil.evil.test')).stdout).toContain('status: REFUSED'); // a new DNS name
    expect(await status(`http://${newPeer}/api/users/1/orders`)).toBe('000'); // a new peer: reset at connect

    const path = (await sidecar.waitForRecord((r) => r.type === 'alert' && l7(r).path === '/admin/panel')) as FlowRecordLine & { suggestion: { rule: Record<string, unknown>; yaml: string } };
    expect(path.reason).toMatch(/^new behaviour: http GET \/admin\/panel egress to backend-0 in shop port 80 was denied by the default action; rule (\S+) would allow it$/);
    expect(path.suggestion.rule).toMatchObject({ action: 'allow', direction: 'egress', peer: { namespace: 'shop', labels: { app: 'backend' } }, ports: [80], protocol: 'http', http: { methods: ['GET'], paths: ['/admin/panel'] } });
    expect(path.reason).toContain(String(path.suggestion.rule.id));
    const grpcAlert = await sidecar.waitForRecord((r) => r.type === 'alert' && l7(r).grpcMethod === 'SayGoodbye');
    expect((grpcAlert.suggestion as { rule: Record<string, unknown> }).rule).toMatchObject({ protocol: 'http2', grpc: { services: ['test.Greeter'], methods: ['SayGoodbye'] } });
    const dnsAlert = await sidecar.waitForRecord((r) => r.type === 'alert' && l7(r).name === 'exfil.evil.test');
    expect((dnsAlert.suggestion as { rule: Record<string, unknown> }).rule).toMatchObject({ protocol: 'dns', dns: { names: ['exfil.evil.test'], types: ['A'] } });
    const peerAlert = await sidecar.waitForRecord((r) => r.type === 'alert' && r.dst.ip === newPeer);
    expect((peerAlert.suggestion as { rule: Record<string, unknown> }).rule).toMatchObject({ peer: { cidr: `${newPeer}/32` }, ports: [80], protocol: 'tcp' });
    expect(alerts(() => true)).toHaveLength(4);
  }, 30_000);

  it('accepts new behaviour with one paste of the suggested rule', async () => {
    const alert = sidecar.records.find((r) => r.type === 'alert' && l7(r).path === '/admin/panel')!;
    const rules = `${annotation['sidewall.io/rules']}${(alert.suggestion as { yaml: string }).yaml}`;
    const file = topo.writeFile('accepted.yaml', rules);
    expect((await policy('check', file)).status).toBe(0);
    await switchMode({ ...annotation, 'sidewall.io/rules': rules }, 'protect');
    expect(await status(`http://${peer}/admin/panel`)).toBe('200');
    expect(await status(`http://${peer}/admin/other`)).toBe('403');
  }, 30_000);

  it('emitted only schema-valid records', () => {
    assertValidFlowRecords(sidecar.records);
    expect(stringify(sidecar.records.filter((r) => r.type === 'alert').map((r) => r.reason))).toContain('new behaviour');
  });
});
