// charts/sidewall/values.schema.json is generated from the schemas the sidecar, `policy check` and
// the webhook validate with; `sidewall manifests` refuses values that do not validate.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { chartDirectory, defaultChartValues, setValue } from '../../injector/install/render.js';
import { chartValuesProblems } from '../../injector/install/values-check.js';
import { chartValuesSchemaText } from '../../injector/install/values-schema.js';
import { run as runManifests } from '../../src/cli/manifests.js';

describe('the chart values schema', () => {
  it('values.schema.json is what the code generates (else: npm run build && npm run schema:values)', () => {
    const file = readFileSync(join(chartDirectory(), 'values.schema.json'), 'utf8');
    expect(file === chartValuesSchemaText(), 'charts/sidewall/values.schema.json is stale: run `npm run build && npm run schema:values`').toBe(true);
  });

  it('every pattern uses only what Go\'s regexp (RE2) accepts: Helm compiles the schema with it', () => {
    const patterns: string[] = [];
    const walk = (node: unknown, key?: string): void => {
      if (Array.isArray(node)) node.forEach((item) => walk(item));
      else if (typeof node === 'object' && node !== null) for (const [k, v] of Object.entries(node)) walk(v, k);
      else if (key === 'pattern' && typeof node === 'string') patterns.push(node);
    };
    walk(JSON.parse(chartValuesSchemaText()).properties);
    walk(JSON.parse(chartValuesSchemaText()).definitions);
    expect(patterns.length).toBeGreaterThan(10);
    // Lookaround, backreferences, \u and \p escapes are JavaScript-only.
    expect(patterns.filter((p) => /\(\?[=!<]|\\[1-9]|\\u|\\p\{/.test(p))).toEqual([]);
  });

  it('sidecar.nodeOptions: heap flags only, as the injector allows', () => {
    for (const ok of ['', '--max-semi-space-size=1', ' --max-semi-space-size=1   --max-old-space-size=192 ']) {
      expect(chartValuesProblems(setValue(defaultChartValues(), `sidecar.nodeOptions=${JSON.stringify(ok)}`))).toEqual([]);
    }
    for (const bad of ['--require=/x.js', '--max-old-space-size=12x', '--max-semi-space-size=1--inspect']) {
      expect(chartValuesProblems(setValue(defaultChartValues(), `sidecar.nodeOptions=${JSON.stringify(bad)}`))).not.toEqual([]);
    }
  });

  it('the default values have no problems', () => {
    expect(chartValuesProblems(defaultChartValues())).toEqual([]);
  });

  it.each([
    ['sidecar.config.mode=protec', "sidecar.config.mode: must be one of protect, monitor, learn, not 'protec'"],
    ['clusterRules=[{"id":"a","action":"permit"}]', "clusterRules[0].action: must be one of allow, deny, pass, not 'permit'"],
    ['sidecar.config.rules=[{"id":"a","action":"pass"}]', "sidecar.config.rules[0].action: 'pass' is only allowed in cluster rules"],
    ['clusterRules=[{"id":"a","action":"deny","peer":{"cidr":"10.0.0.1/8"}}]', "clusterRules[0].peer.cidr: '10.0.0.1/8' has host bits set after the /8 prefix; did you mean '10.0.0.0/8'?"],
    ['clusterRules=[{"id":"a","action":"deny","protocol":"dns","http":{}}]', "clusterRules[0].http: an http block does not match protocol 'dns'"],
    ['sidecar.config.clusterRules=/x', 'sidecar.config: must not set clusterRules or podInfo'],
    ['webhook.timeoutSeconds=45', 'webhook.timeoutSeconds: must be at most 30, not 45'],
  ])('%s → %s', (assignment, problem) => {
    const problems = chartValuesProblems(setValue(defaultChartValues(), assignment));
    expect(problems.some((p) => p.startsWith(problem)), problems.join('\n')).toBe(true);
  });

  it('ids are unique across the cluster and workload tiers', () => {
    const values = setValue(setValue(defaultChartValues(), 'clusterRules=[{"id":"a","action":"deny"}]'), 'sidecar.config.rules=[{"id":"a","action":"allow"}]');
    expect(chartValuesProblems(values)).toEqual(["sidecar.config.rules[0].id: 'a' is also clusterRules[0]; ids must be unique across both tiers"]);
  });

  it('sidewall manifests refuses bad values, printing every problem with its path, and exits 1', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => { out.push(String(chunk)); return true; });
    const errors = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => { err.push(String(chunk)); return true; });
    try {
      expect(await runManifests(['--set', 'sidecar.config.mode=protec', '--set', 'clusterRules=[{"id":"a","action":"permit"}]'])).toBe(1);
    } finally {
      write.mockRestore();
      errors.mockRestore();
    }
    expect(out.join('')).toBe('');
    const text = err.join('');
    expect(text).toContain('the values do not validate (2 problems)');
    expect(text).toContain("values: sidecar.config.mode: must be one of protect, monitor, learn, not 'protec'");
    expect(text).toContain("values: clusterRules[0].action: must be one of allow, deny, pass, not 'permit'");
  });
});
