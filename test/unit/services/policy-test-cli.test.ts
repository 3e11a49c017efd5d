// `sidewall policy test` with a Service destination (issue 20): given by hand, or looked up in the
// file's static `services:` when the file is a sidecar config.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { sidewallPolicy } from '../policy/run-policy-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'sidewall-svc-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const config = join(dir, 'sidecar.yaml');
writeFileSync(config, `mode: protect
identities:
  - { ip: 10.1.0.1, namespace: shop, pod: payments-a, labels: { app: payments } }
services:
  - { namespace: shop, name: payments, clusterIPs: [10.96.0.20], ports: [80], selector: { app: payments } }
rules:
  - { id: to-payments, action: allow, direction: egress, peer: { service: shop/payments } }
  - { id: by-label, action: allow, direction: egress, peer: { labels: { app: catalog } } }
`);

const flow = (dst: unknown): string => JSON.stringify({ direction: 'egress', src: { ip: '10.1.0.9', port: 40000 }, dst });

describe('policy test with a Service destination', () => {
  test("a cluster IP that the config's services list names is that Service", async () => {
    const r = await sidewallPolicy('test', config, '--flow', flow({ ip: '10.96.0.20', port: 80 }), '--json');
    expect(JSON.parse(r.stdout)).toMatchObject({ ruleId: 'to-payments', verdict: 'allowed', atConnect: 'to-payments' });
    const other = await sidewallPolicy('test', config, '--flow', flow({ ip: '10.96.0.99', port: 80 }), '--json');
    expect(JSON.parse(other.stdout)).toMatchObject({ ruleId: 'default', verdict: 'denied' });
  });

  test('dst.service with its endpoints: label rules need every endpoint', async () => {
    const service = (labels: Array<Record<string, string>>) => ({ ip: '10.96.0.30', port: 80, service: { namespace: 'shop', name: 'catalog', endpoints: labels.map((l, i) => ({ ip: `10.1.1.${i}`, workload: { namespace: 'shop', labels: l } })) } });
    const all = await sidewallPolicy('test', config, '--flow', flow(service([{ app: 'catalog' }, { app: 'catalog' }])), '--json');
    expect(JSON.parse(all.stdout)).toMatchObject({ ruleId: 'by-label' });
    const rollout = await sidewallPolicy('test', config, '--flow', flow(service([{ app: 'catalog' }, { app: 'catalog-v2' }])), '--json');
    expect(JSON.parse(rollout.stdout)).toMatchObject({ ruleId: 'default' });
  });
});
