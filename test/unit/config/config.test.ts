import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { ConfigError, DEFAULT_PROXY, loadConfig, parseDownwardApiMap, readPodInfo, tunnelModeFor, DownwardApiError } from '../../../src/config/index.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sidewall-config-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function writeConfig(text: string): string {
  const dir = tempDir();
  const file = join(dir, 'config.yaml');
  writeFileSync(file, text);
  return file;
}

function configErrorOf(text: string): ConfigError {
  try {
    loadConfig(writeConfig(text));
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  test('undefined path gives all defaults', () => {
    const config = loadConfig(undefined);
    expect(config).toMatchObject({ mode: 'monitor', defaultAction: 'deny', ports: {}, tunnels: { default: 'alert', overrides: {} }, identities: [], export: { stdout: true } });
    expect(config.rules).toBeUndefined();
    expect(config.proxy).toEqual({
      connectTimeoutMs: 5000, idleTimeoutMs: 3600000, maxConnections: 20000, drainTimeoutMs: 15000, detectTimeoutMs: 1000,
      headTimeoutMs: 10000, minHeadBytesPerSecond: 100, memoryLimitBytes: 0,
      flowIntervalMs: 60000, outboundPort: 15001, inboundPort: 15006, adminPort: 15000, dnsPort: 15053, socketMark: 0x539, nfqueue: 1337, nfqueueMaxLen: 1024,
    });
    expect(config.admin).toEqual({});
  });

  test('admin.tokenFile resolves against the config folder; other admin keys are refused', () => {
    const file = writeConfig('admin: { tokenFile: secrets/token }\n');
    expect(loadConfig(file).admin.tokenFile).toBe(join(dirname(file), 'secrets/token'));
    const err = configErrorOf('admin: { tokenFile: "", token: x }\n');
    expect(err.problems.join('\n')).toContain('admin.tokenFile: must be a non-empty string');
    expect(err.problems.join('\n')).toContain("admin.token: unknown key 'token' (allowed: tokenFile)");
  });

  test('the PRODUCT.md example loads, relative paths resolve against the config folder', () => {
    const file = writeConfig(`
mode: protect
defaultAction: allow
ports:
  "80": http
  "5432": postgres
tunnels: block
rules: [{ id: a, action: allow }]
clusterRules: cluster/rules.yaml
podInfo: /etc/sidewall/pod
identities:
  - { ip: 10.0.0.5, namespace: shop, pod: cart-0, labels: { app: cart }, serviceAccount: cart }
export:
  stdout: false
  otlp: { endpoint: "otel-collector.observability:4317" }
proxy: { idleTimeoutMs: 1000, adminPort: 9901 }
`);
    const config = loadConfig(file);
    expect(config.mode).toBe('protect');
    expect(config.defaultAction).toBe('allow');
    expect(config.ports).toEqual({ 80: 'http', 5432: 'postgres' });
    expect(config.tunnels).toEqual({ default: 'block', overrides: {} });
    expect(config.rules).toEqual([{ id: 'a', action: 'allow' }]);
    expect(config.clusterRules).toBe(join(file, '..', 'cluster', 'rules.yaml'));
    expect(config.podInfo).toBe('/etc/sidewall/pod');
    expect(config.identities).toEqual([{ ip: '10.0.0.5', namespace: 'shop', pod: 'cart-0', labels: { app: 'cart' }, serviceAccount: 'cart' }]);
    expect(config.export).toEqual({ stdout: false, otlp: { endpoint: 'otel-collector.observability:4317' } });
    expect(config.proxy).toEqual({ ...DEFAULT_PROXY, idleTimeoutMs: 1000, adminPort: 9901 });
    expect(config.file).toBe(file);
  });

  test('JSON works too, and per-protocol tunnel overrides', () => {
    const config = loadConfig(writeConfig('{"tunnels": {"default": "off", "ssh": "block"}}'));
    expect(tunnelModeFor(config.tunnels, 'ssh')).toBe('block');
    expect(tunnelModeFor(config.tunnels, 'dns')).toBe('off');
  });

  test.each([
    ['mode: enforce', 'mode', "must be one of protect, monitor, learn, not 'enforce'"],
    ['defaultAction: reject', 'defaultAction', 'must be one of allow, deny'],
    ['ports: { "99999": http }', 'ports.99999', 'is not a port'],
    ['ports: { "80": htp }', 'ports.80', "'htp' is not a known protocol"],
    ['tunnels: maybe', 'tunnels', 'must be one of block, alert, off'],
    ['tunnels: { ssh: never }', 'tunnels.ssh', 'must be one of block, alert, off'],
    ['rules: { id: a }', 'rules', 'must be a list'],
    ['identities: [{ ip: 10.0.0.500 }]', 'identities[0].ip', 'is not an IP address'],
    ['identities: [{ ip: 10.0.0.5, labels: { a: 1 } }]', 'identities[0].labels.a', 'must be a string'],
    ['export: { otlp: {} }', 'export.otlp.endpoint', 'is required'],
    ['export: { stdout: "yes" }', 'export.stdout', 'must be true or false'],
    ['proxy: { idleTimeoutMs: -5 }', 'proxy.idleTimeoutMs', 'must be a positive whole number of milliseconds'],
    ['proxy: { adminPort: 70000 }', 'proxy.adminPort', 'must be a port (1–65535)'],
    ['proxy: { adminPort: 15001 }', 'proxy.adminPort', 'is also proxy.outboundPort'],
    ['proxy: { idleTimeout: 5 }', 'proxy.idleTimeout', 'unknown key'],
    ['mdoe: protect', 'mdoe', 'unknown key'],
    ['clusterRules: 5', 'clusterRules', 'must be a non-empty string'],
  ])('%s → %s', (text, field, fragment) => {
    const error = configErrorOf(text);
    expect(error.code).toBe('SIDEWALL_CONFIG');
    expect(error.field).toBe(field);
    expect(error.message).toContain(fragment);
    expect(error.message).toContain('config.yaml: ');
    expect(error.message).not.toContain('\n');
  });

  test('several problems: the first in the message, all in problems', () => {
    const error = configErrorOf('mode: x\ndefaultAction: y\n');
    expect(error.field).toBe('mode');
    expect(error.problems).toHaveLength(2);
    expect(error.message).toContain('and 1 more');
  });

  test('unreadable and unparsable files', () => {
    expect(() => loadConfig('/nonexistent/sidewall.yaml')).toThrow(/\/nonexistent\/sidewall.yaml: cannot read the config: file not found/);
    expect(() => loadConfig(writeConfig('mode: [protect'))).toThrow(ConfigError);
    expect(() => loadConfig(writeConfig('- a\n- b\n'))).toThrow(/must be a mapping of settings/);
  });

  test('an empty file is refused, not read as the defaults (monitor, no rules); `{}` asks for them', () => {
    for (const text of ['', '\n  \n']) expect(configErrorOf(text).message).toMatch(/config\.yaml: the config file is empty \(the defaults — monitor mode, no rules — are not taken from an empty file: write `\{\}` or `mode: monitor`/);
    expect(loadConfig(writeConfig('{}\n'))).toMatchObject({ mode: 'monitor', defaultAction: 'deny' });
  });
});

describe('downward API files', () => {
  test('Go-quoted values: escaped quotes, newlines, unicode and byte escapes', () => {
    const text = [
      'kubernetes.io/config.seen="2026-01-01T00:00:00Z"',
      'sidewall.io/mode="protect"',
      'sidewall.io/rules="- id: \\"web\\"\\n  action: allow\\n  http: {paths: [\\"/a\\\\\\\\b\\"]}\\n"',
      'note="tab\\there caf\\u00e9 caf\\xc3\\xa9 \\U0001F600 \\101 bell\\a"',
      'empty=""',
      'raw="naïve"',
      '',
    ].join('\n');
    const map = parseDownwardApiMap(text);
    expect(map['sidewall.io/mode']).toBe('protect');
    expect(map['sidewall.io/rules']).toBe('- id: "web"\n  action: allow\n  http: {paths: ["/a\\\\b"]}\n');
    expect(map.note).toBe('tab\there café café 😀 A bell\u0007');
    expect(map.empty).toBe('');
    expect(map.raw).toBe('naïve');
    expect(Object.keys(map)).toHaveLength(6);
  });

  test.each([
    ['noequals', 'expected key="value"'],
    ['k=unquoted', 'not a quoted string'],
    ['k="open', 'unterminated'],
    ['k="a\\q"', "unknown escape '\\q'"],
    ['k="a\\x4"', 'bad \\x escape'],
    ['k="a" trailing', 'unexpected text'],
  ])('%s is refused with file and line', (line, fragment) => {
    expect(() => parseDownwardApiMap(`ok="1"\n${line}\n`, '/pod/annotations')).toThrow(DownwardApiError);
    expect(() => parseDownwardApiMap(`ok="1"\n${line}\n`, '/pod/annotations')).toThrow(/^\/pod\/annotations:2: /);
    expect(() => parseDownwardApiMap(`ok="1"\n${line}\n`, '/pod/annotations')).toThrow(fragment);
  });

  test('readPodInfo reads annotations, labels, name and namespace; missing files are empty', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'annotations'), 'a="1"\n');
    writeFileSync(join(dir, 'labels'), 'app="cart"\npod-template-hash="abc"\n');
    writeFileSync(join(dir, 'name'), 'cart-0');
    writeFileSync(join(dir, 'namespace'), 'shop\n');
    expect(readPodInfo(dir)).toEqual({ annotations: { a: '1' }, labels: { app: 'cart', 'pod-template-hash': 'abc' }, name: 'cart-0', namespace: 'shop' });
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    expect(readPodInfo(empty)).toEqual({ annotations: {}, labels: {} });
  });
});
