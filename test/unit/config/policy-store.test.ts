import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { ConfigError, loadConfig, PolicyStore, type PolicyStoreOptions } from '../../../src/config/index.js';
import type { CompiledPolicy, FlowFacts, RuleIssue } from '../../../src/policy/index.js';

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const fn of cleanup.splice(0).reverse()) fn();
});

/** Go-quotes a value the way the kubelet writes downward API files. */
function goQuote(value: string): string {
  return JSON.stringify(value);
}

/**
 * A fake pod: config.yaml, a ConfigMap-style cluster rules folder and a downward API folder,
 * both updated the way the kubelet does it (new timestamped folder, then `..data` swapped).
 */
class FakePod {
  readonly root = mkdtempSync(join(tmpdir(), 'sidewall-store-'));
  readonly clusterDir = join(this.root, 'cluster');
  readonly podDir = join(this.root, 'pod');
  private generation = 0;

  constructor() {
    mkdirSync(this.clusterDir);
    mkdirSync(this.podDir);
    cleanup.push(() => rmSync(this.root, { recursive: true, force: true }));
  }

  get configPath(): string {
    return join(this.root, 'config.yaml');
  }

  writeConfig(text: string): void {
    writeFileSync(this.configPath, text);
  }

  /** Atomic update of a projected volume: files appear through the swapped `..data` link. */
  private swap(dir: string, files: Record<string, string>): void {
    const generation = `..gen_${++this.generation}`;
    mkdirSync(join(dir, generation));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, generation, name), text);
    symlinkSync(generation, join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    for (const name of Object.keys(files)) {
      try {
        symlinkSync(join('..data', name), join(dir, name));
      } catch {
        // already linked
      }
    }
  }

  writeCluster(text: string): void {
    this.swap(this.clusterDir, { 'rules.yaml': text });
  }

  writeAnnotations(annotations: Record<string, string>): void {
    const text = Object.keys(annotations).sort().map((k) => `${k}=${goQuote(annotations[k]!)}`).join('\n');
    this.swap(this.podDir, { annotations: text, labels: 'app="cart"' });
  }

  async open(options: PolicyStoreOptions = { pollIntervalMs: 0, debounceMs: 20 }): Promise<PolicyStore> {
    const store = await PolicyStore.open(loadConfig(this.configPath), this.configPath, options);
    cleanup.push(() => store.close());
    return store;
  }
}

const egress = (port: number): FlowFacts => ({ direction: 'egress', src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port } });

function nextReload(store: PolicyStore, timeoutMs = 5000): Promise<CompiledPolicy> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no reload event')), timeoutMs);
    store.once('reload', (policy) => {
      clearTimeout(timer);
      resolve(policy);
    });
  });
}

function nextFailure(store: PolicyStore, timeoutMs = 5000): Promise<{ issues: RuleIssue[]; source: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no reload-failed event')), timeoutMs);
    store.once('reload-failed', (issues, source) => {
      clearTimeout(timer);
      resolve({ issues, source });
    });
  });
}

describe('PolicyStore', () => {
  test('builds the tiers from the cluster file and the rules annotation, mode from the annotation', async () => {
    const pod = new FakePod();
    pod.writeConfig('mode: monitor\ndefaultAction: deny\nclusterRules: cluster/rules.yaml\npodInfo: pod\n');
    pod.writeCluster('- { id: c-deny-ssh, action: deny, ports: 22 }\n- { id: c-pass, action: pass }\n');
    pod.writeAnnotations({ 'sidewall.io/rules': '- id: w-web\n  action: allow\n  ports: [80]\n', 'sidewall.io/mode': 'protect' });
    const store = await pod.open();
    const policy = store.current();
    expect(policy.mode).toBe('protect');
    expect(policy.ruleCount).toBe(3);
    expect(policy.decide(egress(22))).toMatchObject({ ruleId: 'c-deny-ssh', verdict: 'denied' });
    expect(policy.decide(egress(80))).toMatchObject({ ruleId: 'w-web', verdict: 'allowed' });
    expect(policy.decide(egress(81))).toMatchObject({ ruleId: 'default', verdict: 'denied' });
  });

  test('rules in the config take precedence over the annotation', async () => {
    const pod = new FakePod();
    pod.writeConfig('mode: protect\npodInfo: pod\nrules: [{ id: cfg, action: allow }]\n');
    pod.writeAnnotations({ 'sidewall.io/rules': '[{id: ann, action: deny}]' });
    const store = await pod.open();
    expect(store.current().decide(egress(1)).ruleId).toBe('cfg');
  });

  test('invalid initial rules: ConfigError listing every issue', async () => {
    const pod = new FakePod();
    pod.writeConfig('podInfo: pod\n');
    pod.writeAnnotations({ 'sidewall.io/rules': '- { id: a, action: pass }\n- { id: b, action: allow, ports: 0 }\n' });
    const error = await pod.open().then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(/^annotation sidewall.io\/rules: rules\[0\].action: 'pass' is only allowed in cluster rules.* \(and 1 more: /);
    expect((error as ConfigError).message).not.toContain('\n');
    expect((error as ConfigError).message).toContain('annotation sidewall.io/rules: rules[1].ports:');
    expect((error as ConfigError).problems).toHaveLength(2);
  });

  test('a missing cluster rules file is refused at start', async () => {
    const pod = new FakePod();
    pod.writeConfig('clusterRules: cluster/absent.yaml\n');
    await expect(pod.open()).rejects.toThrow(/absent.yaml: the cluster rules file does not exist/);
  });

  test('hot reload through a ..data swap (fs.watch), then a broken update keeps the last good policy', async () => {
    const pod = new FakePod();
    pod.writeConfig('mode: protect\npodInfo: pod\n');
    pod.writeAnnotations({ 'sidewall.io/rules': '[{id: allow-80, action: allow, ports: 80}]' });
    const store = await pod.open();
    const first = store.current();
    expect(first.decide(egress(443)).verdict).toBe('denied');

    const reloaded = nextReload(store);
    pod.writeAnnotations({ 'sidewall.io/rules': '[{id: allow-80, action: allow, ports: 80}, {id: allow-443, action: allow, ports: 443}]' });
    const second = await reloaded;
    expect(second.hash).not.toBe(first.hash);
    expect(store.current()).toBe(second);
    expect(store.current().decide(egress(443))).toMatchObject({ ruleId: 'allow-443', verdict: 'allowed', policy: second.hash });
    // the old snapshot is unchanged: decisions in flight keep their policy
    expect(first.decide(egress(443)).ruleId).toBe('default');

    const failed = nextFailure(store);
    pod.writeAnnotations({ 'sidewall.io/rules': '[{id: bad, action: allow, peer: {cidr: 10.0.0.0/33}}]' });
    const { issues, source } = await failed;
    expect(source).toBe('annotation sidewall.io/rules');
    expect(issues).toEqual([expect.objectContaining({ index: 0, field: 'peer.cidr', id: 'bad' })]);
    expect(store.current()).toBe(second);

    const modeChange = nextReload(store);
    pod.writeAnnotations({ 'sidewall.io/rules': '[{id: allow-80, action: allow, ports: 80}]', 'sidewall.io/mode': 'monitor' });
    const third = await modeChange;
    expect(third.mode).toBe('monitor');
    expect(third.decide(egress(443))).toMatchObject({ action: 'allow', verdict: 'would-deny' });
  });

  test('polling alone picks up changes to the cluster file and the config file', async () => {
    const pod = new FakePod();
    pod.writeConfig('mode: protect\nclusterRules: cluster/rules.yaml\nrules: []\n');
    pod.writeCluster('[{id: c1, action: deny, ports: 22}]');
    const store = await PolicyStore.open(loadConfig(pod.configPath), pod.configPath, { pollIntervalMs: 50 });
    cleanup.push(() => store.close());
    // stop the folder watchers so that only the poll can notice
    (store as unknown as { watchers: Array<{ close(): void }> }).watchers.forEach((w) => w.close());

    const clusterReload = nextReload(store);
    pod.writeCluster('[{id: c2, action: deny, ports: 23}]');
    expect((await clusterReload).decide(egress(23)).ruleId).toBe('c2');

    const configReload = nextReload(store);
    pod.writeConfig('mode: protect\ndefaultAction: allow\nclusterRules: cluster/rules.yaml\nrules: [{id: w, action: deny, ports: 25}]\n');
    const policy = await configReload;
    expect(policy.defaultAction).toBe('allow');
    expect(policy.decide(egress(25)).ruleId).toBe('w');

    const failed = nextFailure(store);
    pod.writeConfig('mode: sometimes\n');
    expect((await failed).issues[0]!.message).toContain("mode: must be one of protect, monitor, learn, not 'sometimes'");
    expect(store.current()).toBe(policy);
  });

  test('a broken source is reported once, not at every poll, and a bad mode annotation is refused', async () => {
    const pod = new FakePod();
    pod.writeConfig('podInfo: pod\n');
    pod.writeAnnotations({});
    const store = await PolicyStore.open(loadConfig(pod.configPath), pod.configPath, { pollIntervalMs: 30, debounceMs: 10 });
    cleanup.push(() => store.close());
    const failures: string[] = [];
    store.on('reload-failed', (issues, source) => failures.push(`${source}: ${issues[0]!.message}`));
    pod.writeAnnotations({ 'sidewall.io/mode': 'enforce' });
    await new Promise((r) => setTimeout(r, 400));
    expect(failures).toEqual(["annotation sidewall.io/mode: 'enforce' is not a mode (protect, monitor, learn)"]);
  });

  // A writer that truncates and then writes (editors, cp, kubectl cp) leaves the file empty or
  // half-written for a moment; the store must never put what it reads in that moment in force.
  test('an emptied config file keeps the last good rules instead of loading the defaults (monitor, no rules)', async () => {
    const pod = new FakePod();
    pod.writeConfig('mode: protect\ndefaultAction: deny\nrules: [{id: web, action: allow, ports: 80}]\n');
    const store = await pod.open();
    const first = store.current();
    const reloads: CompiledPolicy[] = [];
    store.on('reload', (p) => reloads.push(p));
    const failed = nextFailure(store);
    pod.writeConfig('');
    const { issues, source } = await failed;
    expect(source).toBe(pod.configPath);
    expect(issues[0]!.message).toContain('the config file is empty (the defaults — monitor mode, no rules — are not taken from an empty file');
    expect(store.current()).toBe(first);
    expect(store.current().decide(egress(443))).toMatchObject({ verdict: 'denied', ruleId: 'default' });

    const back = nextReload(store);
    pod.writeConfig('mode: protect\ndefaultAction: deny\nrules: [{id: web, action: allow, ports: [80, 8080]}]\n');
    expect((await back).mode).toBe('protect');
    expect(reloads.map((p) => p.mode)).toEqual(['protect']);
  });

  test('a change takes effect only once a second read finds the same content', async () => {
    const pod = new FakePod();
    const full = 'mode: protect\ndefaultAction: allow\nrules:\n  - {id: no-ssh, action: deny, ports: 22}\n  - {id: no-smtp, action: deny, ports: 25}\n';
    pod.writeConfig(full);
    const store = await PolicyStore.open(loadConfig(pod.configPath), pod.configPath, { pollIntervalMs: 0, debounceMs: 20 });
    cleanup.push(() => store.close());
    (store as unknown as { watchers: Array<{ close(): void }> }).watchers.forEach((w) => w.close());
    const applied: CompiledPolicy[] = [];
    store.on('reload', (p) => applied.push(p));
    // Half of the new file is there: valid YAML whose deny rule for 25 has not been written yet.
    const next = full.replace('ports: 25}', 'ports: [25, 465]}');
    pod.writeConfig(next.slice(0, next.indexOf('  - {id: no-smtp')));
    expect(store.reload()).toBe(false); // first sight of the change: not in force
    expect(store.current().decide(egress(25)).ruleId).toBe('no-smtp');
    pod.writeConfig(next); // the writer finishes before the re-read
    const policy = await nextReload(store);
    expect(applied).toEqual([policy]);
    expect(policy.decide(egress(465))).toMatchObject({ ruleId: 'no-smtp', verdict: 'denied' });
  });
});
