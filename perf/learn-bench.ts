// Learning mode (issue 9): the model's memory at 100,000 distinct requests, the cost of learning
// one record, and how many rules typical traffic produces.
// Run: npx tsc -p tsconfig.build.json && node --expose-gc dist/perf/learn-bench.js
// (tsc emits even when other folders have type errors; only this file and src/learn matter.)
//
// Scenarios of 100,000 distinct requests each (no request repeats):
// - "rest-ids": 20 REST templates on 5 peers, every request with a fresh numeric id or UUID;
// - "unique-words": every path a fresh word (no ids a classifier would catch: a scanner, a fuzzer),
//   the case the sibling collapse and the node budget exist for;
// - "many-peers": 2,000 unknown client addresses across 8 /24s, 50 paths each;
// - "unique-words, budget only": sibling collapse off, so the node budget alone bounds memory.
import { performance } from 'node:perf_hooks';
import type { FlowRecordDraft } from '../src/flows/types.js';
import { generateRules, LearnModel, type LearnLimits, type ObservedRecord } from '../src/learn/index.js';

const N = 100_000;
const gc = (globalThis as { gc?: () => void }).gc;

function heapUsed(): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
}

function letters(n: number): string {
  return [...n.toString(26)].map((d) => String.fromCharCode(97 + parseInt(d, 26))).join('');
}

function request(direction: FlowRecordDraft['direction'], ip: string, port: number, method: string, path: string, workload?: FlowRecordDraft['src']['workload']): ObservedRecord {
  const remote = { ip, port: direction === 'ingress' ? 40000 : port, ...(workload ? { workload } : {}) };
  const self = { ip: '10.1.0.5', port: direction === 'ingress' ? port : 40000 };
  return {
    type: 'request',
    direction,
    src: direction === 'ingress' ? remote : self,
    dst: direction === 'ingress' ? self : remote,
    protocol: 'http',
    l7: { method, path, host: 'api.shop.svc.cluster.local', status: 200 },
  };
}

const RESOURCES = ['users', 'orders', 'carts', 'products', 'invoices'];
const scenarios: Record<string, (i: number) => ObservedRecord> = {
  'rest-ids': (i) => {
    const r = RESOURCES[i % 5]!;
    const peer = { namespace: 'shop', labels: { app: `svc-${i % 5}` } };
    const shape = (i >> 3) % 4;
    const path = shape === 0 ? `/api/v1/${r}/${i}` : shape === 1 ? `/api/v1/${r}/${crypto.randomUUID()}/items` : shape === 2 ? `/api/v1/${r}/${i}/history/${i * 7}` : `/api/v1/${r}/search?q=${i}`;
    return request('egress', `10.2.0.${i % 5}`, 8080, shape === 1 ? 'POST' : 'GET', path, peer);
  },
  'unique-words': (i) => request('ingress', '10.5.0.1', 8080, 'GET', `/${letters(i)}/${letters(i * 31 + 7)}`),
  'many-peers': (i) => request('ingress', `192.168.${i % 8}.${(i >> 3) % 250}`, 9090, 'GET', `/metrics/${letters(i % 50)}`),
};

function run(name: string, make: (i: number) => ObservedRecord, limits: Partial<LearnLimits> = {}): string {
  // Records are made one at a time and dropped, so the heap growth is what the model keeps.
  const before = heapUsed();
  const model = new LearnModel(limits);
  let learnMs = 0;
  for (let i = 0; i < N; i++) {
    const record = make(i);
    const t = performance.now();
    model.observe(record, 1_700_000_000_000 + i);
    learnMs += performance.now() - t;
  }
  const after = heapUsed();
  const t1 = performance.now();
  const rules = generateRules(model);
  const generateMs = performance.now() - t1;
  const state = JSON.stringify(model.toState());
  return `| ${name} | ${((after - before) / 2 ** 20).toFixed(2)} MiB | ${model.nodeCount} | ${model.serviceCount} | ${model.folded} | ${rules.length} | ${((learnMs * 1000) / N).toFixed(2)} µs | ${generateMs.toFixed(1)} ms | ${(state.length / 1024).toFixed(1)} KiB |`;
}

/** A typical microservice's day: what its rules look like. */
function typical(): { requests: number; rules: number; byKind: Record<string, number> } {
  const model = new LearnModel();
  let n = 0;
  const observe = (r: ObservedRecord): void => {
    model.observe(r, 1_700_000_000_000 + n++);
  };
  const frontends = [{ namespace: 'web', labels: { app: 'frontend' } }, { namespace: 'web', labels: { app: 'admin-ui' } }];
  for (let i = 0; i < 20_000; i++) {
    const fe = frontends[i % 2]!;
    const id = 1000 + (i % 997);
    const [method, path] = ([
      ['GET', `/api/carts/${id}`], ['POST', `/api/carts/${id}/items`], ['DELETE', `/api/carts/${id}/items/${i % 13}`],
      ['PUT', `/api/carts/${id}`], ['GET', '/api/carts'], ['GET', '/healthz'], ['GET', '/readyz'], ['GET', `/api/carts/${id}/total`],
    ] as const)[i % 8]!;
    observe(request('ingress', `10.3.0.${i % 4}`, 8080, method, path, fe));
    observe(request('egress', '10.2.0.7', 80, 'GET', `/v1/products/${crypto.randomUUID()}`, { namespace: 'shop', labels: { app: 'catalog' } }));
    if (i % 4 === 0) observe(request('egress', '10.2.0.8', 80, 'POST', `/v1/prices/quote`, { namespace: 'shop', labels: { app: 'pricing' } }));
    const grpcMethod = ['Reserve', 'Release', 'Check', 'Watch'][i % 4]!;
    observe({ type: 'request', direction: 'egress', src: { ip: '10.1.0.5', port: 40000 }, dst: { ip: '10.2.0.9', port: 50051, workload: { namespace: 'shop', labels: { app: 'inventory' } } }, protocol: 'grpc', l7: { service: 'shop.v1.Inventory', grpcMethod } });
    if (i % 10 === 0) {
      const name = ['catalog.shop.svc.cluster.local', 'pricing.shop.svc.cluster.local', 'inventory.shop.svc.cluster.local', 'api.stripe.com', 'sentry.io', 'redis.shop.svc.cluster.local'][i % 6]!;
      observe({ type: 'request', direction: 'egress', src: { ip: '10.1.0.5', port: 40000 }, dst: { ip: '10.96.0.10', port: 53 }, protocol: 'dns', l7: { name, type: i % 20 === 0 ? 'AAAA' : 'A' } });
      observe({ type: 'connection', direction: 'egress', src: { ip: '10.1.0.5', port: 40000 }, dst: { ip: '10.2.0.11', port: 6379, workload: { namespace: 'shop', labels: { app: 'redis' } } }, protocol: 'redis', l7: { command: 'GET' } });
    }
    if (i % 50 === 0) observe({ type: 'connection', direction: 'egress', src: { ip: '10.1.0.5', port: 40000 }, dst: { ip: '203.0.113.10', port: 443 }, protocol: 'tls', l7: { sni: i % 100 === 0 ? 'api.stripe.com' : 'hooks.stripe.com' } });
  }
  const rules = generateRules(model);
  const byKind: Record<string, number> = {};
  for (const r of rules) {
    const kind = r.http ? 'http' : r.grpc ? 'grpc' : r.dns ? 'dns' : r.tls ? 'tls' : `l4 ${r.protocol}`;
    byKind[kind] = (byKind[kind] ?? 0) + 1;
  }
  return { requests: n, rules: rules.length, byKind };
}

if (gc === undefined) process.stderr.write('learn-bench: run node with --expose-gc for stable memory numbers\n');
const lines = [
  `# learn bench (${new Date().toISOString()}, node ${process.version}, default limits: maxPaths 20,000, maxServices 1,000, maxSiblings 32)`,
  '',
  `| ${N.toLocaleString('en')} distinct requests | heap growth | nodes | entries | folded | rules | learn/record | generate | state file |`,
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ...Object.entries(scenarios).map(([name, make]) => run(name, make)),
  // Sibling collapse off: only the node budget (maxPaths) bounds the model.
  run('unique-words, budget only', scenarios['unique-words']!, { maxSiblings: 1_000_000 }),
  run('unique-words, budget only, maxPaths 100k', scenarios['unique-words']!, { maxSiblings: 1_000_000, maxPaths: 100_000 }),
  '',
];
const t = typical();
lines.push(`typical traffic: ${t.requests.toLocaleString('en')} records → ${t.rules} rules (${Object.entries(t.byKind).map(([k, v]) => `${k}: ${v}`).join(', ')})`);
process.stdout.write(lines.join('\n') + '\n');
