// `sidewall policy learn`: flow records (files, stdin) or a sidecar's model (admin port) in,
// rules out in the four formats, and what it prints passes `sidewall policy check`.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { sidewallPolicy } from '../policy/run-policy-cli.js';
import { parse } from 'yaml';
import { LearnModel } from '../../../src/learn/index.js';
import { BACKEND, dns, grpc, http, resetClock } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'sidewall-learn-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeEach(() => resetClock());


const backend = { ip: '10.2.0.7', workload: BACKEND };

function recordsFile(): string {
  const lines = [
    ...Array.from({ length: 5 }, (_, i) => http('egress', backend, 80, 'GET', `/v1/items/${i + 100}`, 'backend.shop')),
    grpc(backend, 50051, 'shop.v1.Inventory', 'Reserve'),
    dns({ ip: '10.96.0.10' }, 'backend.shop.svc.cluster.local'),
  ].map((r) => JSON.stringify(r));
  lines.splice(2, 0, '{"level":30,"msg":"a log line mixed in"}', 'not json at all');
  const path = join(dir, 'flows.jsonl');
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
}

describe('sidewall policy learn', () => {
  it('prints rules from flow records that pass policy check, and names the lines it skipped', async () => {
    const flows = recordsFile();
    const learned = await sidewallPolicy('learn', flows);
    expect(learned.code).toBe(0);
    expect(learned.stdout).toMatch(/^# sidewall policy learn: 3 rules from 7 observations \(folded 0, dropped 0\)/);
    expect(learned.stderr).toContain(`skipped ${flows}:3: has no 'type' (is this a flow record?)`);
    expect(learned.stderr).toMatch(new RegExp(`skipped ${flows}:4: not JSON`));
    const rules = parse(learned.stdout) as Array<{ id: string; http?: { paths: string[] } }>;
    expect(rules).toHaveLength(3);
    expect(rules.find((r) => r.http)?.http?.paths).toEqual(['/v1/items/*']);
    const out = join(dir, 'learned.yaml');
    writeFileSync(out, learned.stdout);
    const checked = await sidewallPolicy('check', out);
    expect(checked.stdout).toMatch(/^ok: 3 rules, policy [0-9a-f]{12}\n$/);
    expect(checked.code).toBe(0);
    const again = await sidewallPolicy('learn', flows);
    expect(again.stdout).toBe(learned.stdout); // deterministic
  });

  it('answers which rule a learned request hits (policy test on the output)', async () => {
    const out = join(dir, 'learned2.yaml');
    writeFileSync(out, (await sidewallPolicy('learn', recordsFile())).stdout);
    const flow = JSON.stringify({ direction: 'egress', src: { ip: '10.1.0.5', port: 40000 }, dst: { ip: '10.2.0.7', port: 80, workload: BACKEND }, protocol: 'http', l7: { http: { method: 'GET', path: '/v1/items/424242', host: 'backend.shop' } } });
    const test = await sidewallPolicy('test', out, '--mode', 'protect', '--flow', flow, '--json');
    expect(JSON.parse(test.stdout)).toMatchObject({ verdict: 'allowed', ruleId: 'learn-egress-backend.shop-http-80-get' });
    const other = await sidewallPolicy('test', out, '--mode', 'protect', '--flow', flow.replace('/v1/items/424242', '/v1/admin'), '--json');
    expect(JSON.parse(other.stdout)).toMatchObject({ verdict: 'denied', ruleId: 'default' });
  });

  it('prints the annotation and a kubectl merge patch, optionally locking the pod in protect mode', async () => {
    const flows = recordsFile();
    const annotation = await sidewallPolicy('learn', flows, '-o', 'annotation', '--lock');
    const doc = parse(annotation.stdout) as Record<string, string>;
    expect(Object.keys(doc)).toEqual(['sidewall.io/rules', 'sidewall.io/mode']);
    expect(doc['sidewall.io/mode']).toBe('protect');
    const rulesFile = join(dir, 'annotation-rules.yaml');
    writeFileSync(rulesFile, doc['sidewall.io/rules']!);
    expect((await sidewallPolicy('check', rulesFile)).code).toBe(0);
    const patch = await sidewallPolicy('learn', flows, '-o', 'patch');
    const body = JSON.parse(patch.stdout) as { metadata: { annotations: Record<string, string> } };
    expect(body.metadata.annotations['sidewall.io/rules']).toBe(doc['sidewall.io/rules']);
    const json = await sidewallPolicy('learn', flows, '-o', 'json');
    expect(JSON.parse(json.stdout)).toEqual(parse(doc['sidewall.io/rules']!));
  });

  it("reads a running sidecar's model from its admin port, and a saved model file", async () => {
    const model = new LearnModel();
    model.observe(http('ingress', { ip: '10.3.0.9' }, 8080, 'GET', '/healthz'));
    const state = model.toState();
    const server = createServer((req, res) => {
      if (req.url === '/learn/model') res.end(JSON.stringify({ ...state, status: { mode: 'learn' } }));
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const fromAdmin = await sidewallPolicy('learn', '--from', `127.0.0.1:${port}`, '-o', 'json');
      expect(fromAdmin.code).toBe(0);
      expect(JSON.parse(fromAdmin.stdout)).toMatchObject([{ direction: 'ingress', peer: { cidr: '10.3.0.9/32' }, http: { paths: ['/healthz'] } }]);
      const saved = join(dir, 'learn.json');
      writeFileSync(saved, JSON.stringify(state));
      const fromFile = await sidewallPolicy('learn', saved, '-o', 'json');
      expect(fromFile.stdout).toBe(fromAdmin.stdout);
    } finally {
      await new Promise((r) => server.close(r));
    }
    const closedPort = port; // closed above: nothing listens there now
    const unreachable = await sidewallPolicy('learn', '--from', `http://127.0.0.1:${closedPort}`);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toBe(`sidewall policy learn: http://127.0.0.1:${closedPort}/learn/model: cannot reach the sidecar's admin port: ECONNREFUSED\n`);
  });

  it('refuses a broken saved model naming the field, and an unknown format', async () => {
    const bad = join(dir, 'bad-model.json');
    writeFileSync(bad, JSON.stringify({ kind: 'sidewall-learn-model', version: 1, observed: 0, folded: 0, dropped: 0, services: [{ direction: 'egress', peer: { cidr: 'nope' }, port: 1, family: 'tcp' }] }));
    const r = await sidewallPolicy('learn', bad);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${bad}: services[0].peer.cidr: 'nope' is not an address block`);
    const format = await sidewallPolicy('learn', bad, '-o', 'xml');
    expect(format.code).toBe(2);
    expect(format.stderr).toContain('--output must be one of yaml, json, annotation, patch');
  });
});
