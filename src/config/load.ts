// The sidecar config file (PRODUCT.md "Sidecar config"), YAML or JSON; every key optional.
// Structure is checked here; the rules themselves are checked by the policy store, which sees
// both tiers. Relative `clusterRules` and `podInfo` paths are relative to the config file.

import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isIP } from 'node:net';
import { PROTOCOLS } from '../policy/schema.js';
import { parseRuleText } from '../policy/source.js';
import type { Mode } from '../policy/types.js';
import { DEFAULT_TARGET_OPTIONS, type TargetOptions } from '../enforcement/request-target.js';
import type { ServiceEntry } from '../identity/service-directory.js';
import { parseServices } from './services.js';

export type TunnelMode = 'block' | 'alert' | 'off';

/** `tunnels: block`, or `tunnels: {default: alert, ssh: block, dns: off}` (per protocol or detection). */
export interface TunnelPolicy {
  default: TunnelMode;
  overrides: Record<string, TunnelMode>;
}

export interface IdentityEntry {
  ip: string;
  namespace?: string;
  pod?: string;
  labels?: Record<string, string>;
  serviceAccount?: string;
}

/** The identity controller the sidecar subscribes to (PRODUCT: workload identity; issue 8). */
export interface IdentityControllerConfig {
  /** host:port of `sidewall controller`'s identity stream. */
  controller: string;
  /** Absolute path of the projected service-account token sent to the controller. */
  tokenFile?: string;
  /** Absolute path of the CA bundle (PEM) that signs the controller's certificate; TLS when set. */
  caFile?: string;
}

export interface ExportConfig {
  stdout: boolean;
  otlp?: { endpoint: string; insecure?: boolean; headers?: Record<string, string> };
}

/** Who may read the admin port's private endpoints (PRODUCT.md "Admin access"). */
export interface AdminConfig {
  /**
   * Absolute path of a file holding a bearer token (mounted by the operator, e.g. from a Secret):
   * a request with `Authorization: Bearer <token>` may read the flow stream, /connections and
   * /learn/model from anywhere the admin port is reachable. Read at each request, so a rotated
   * Secret applies at once. Unset: only the sidecar's own user may.
   */
  tokenFile?: string;
}

export interface ProxyTunables {
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  maxConnections: number;
  drainTimeoutMs: number;
  detectTimeoutMs: number;
  /** Bytes held for a verdict (a request head, a handshake) may wait this long, then the connection is reset. */
  headTimeoutMs: number;
  /** ...and must arrive at least this fast, on average, once held for a second (slowloris). */
  minHeadBytesPerSecond: number;
  /** The memory the sidecar may use; 0: the container's cgroup limit. Connection limits and buffers derive from it. */
  memoryLimitBytes: number;
  flowIntervalMs: number;
  outboundPort: number;
  inboundPort: number;
  adminPort: number;
  dnsPort: number;
  /** SO_MARK of every socket the proxy opens; must equal `sidewall init --proxy-mark`. */
  socketMark: number;
  /** NFQUEUE number of the non-TCP guard; must match `sidewall init --nfqueue`. */
  nfqueue: number;
  /** Packets the kernel keeps waiting for the guard's verdict; beyond that it drops them (fails closed). */
  nfqueueMaxLen: number;
}

/** Learning mode (issue 9): where the learned model is kept, and its memory limits. */
export interface LearnConfig {
  /** Absolute path of the model's state file (under the sidecar's writable volume). */
  stateFile: string;
  /** Distinct (direction, peer, port, protocol) entries. */
  maxServices: number;
  /** Path, host, name and gRPC method templates, all entries together. */
  maxPaths: number;
  /** Distinct children of one path segment or name before they collapse to '*'. */
  maxSiblings: number;
  /** How often a changed model is saved, in milliseconds. */
  saveIntervalMs: number;
}

export const DEFAULT_LEARN: Readonly<LearnConfig> = Object.freeze({
  stateFile: '/tmp/sidewall-learn.json',
  maxServices: 1000,
  maxPaths: 20_000,
  maxSiblings: 32,
  saveIntervalMs: 30_000,
});

export interface SidecarConfig {
  mode: Mode;
  defaultAction: 'allow' | 'deny';
  /** Destination port → the protocol it carries (what detection does not recognise there is parsed as it; verification checks it). */
  ports: Record<number, string>;
  /**
   * What a parse error does in monitor and learn modes: 'pass' (default) records it and lets the
   * connection go on unparsed; 'reset' ends it. Under protect a parse error always resets.
   */
  onParseError: 'pass' | 'reset';
  tunnels: TunnelPolicy;
  /** The workload tier, when given in the config (else the pod annotation sidewall.io/rules). */
  rules?: unknown[];
  /** Absolute path of the cluster rules file. */
  clusterRules?: string;
  /** Absolute path of the downward API folder. */
  podInfo?: string;
  identities: IdentityEntry[];
  /** Static Kubernetes Services (config/services.ts); the controller streams the cluster's. */
  services: ServiceEntry[];
  /** Set: workload identities also come from the controller's stream. */
  identity?: IdentityControllerConfig;
  export: ExportConfig;
  proxy: ProxyTunables;
  learn: LearnConfig;
  admin: AdminConfig;
  /** How HTTP request targets are normalised for rules (README "Request targets"). */
  http: TargetOptions;
  /** Absolute path of the file this config came from, if any. */
  file?: string;
}

export const DEFAULT_PROXY: Readonly<ProxyTunables> = Object.freeze({
  connectTimeoutMs: 5000,
  idleTimeoutMs: 3_600_000,
  maxConnections: 20_000,
  drainTimeoutMs: 15_000,
  detectTimeoutMs: 1000,
  headTimeoutMs: 10_000,
  minHeadBytesPerSecond: 100,
  memoryLimitBytes: 0,
  flowIntervalMs: 60_000,
  outboundPort: 15001,
  inboundPort: 15006,
  adminPort: 15000,
  dnsPort: 15053,
  socketMark: 0x539,
  nfqueue: 1337,
  nfqueueMaxLen: 1024,
});

export class ConfigError extends Error {
  readonly code = 'SIDEWALL_CONFIG';
  /** One line: 'FILE: FIELD: problem'. `problems` holds every problem found, the first in `message`. */
  constructor(readonly file: string, readonly field: string, detail: string, readonly problems: string[] = []) {
    super(field === '' ? `${file}: ${detail}` : `${file}: ${field}: ${detail}`);
    this.name = 'ConfigError';
    if (this.problems.length === 0) this.problems = [this.message];
  }
}

export const TOP_KEYS = ['mode', 'defaultAction', 'onParseError', 'ports', 'tunnels', 'rules', 'clusterRules', 'podInfo', 'identities', 'services', 'identity', 'export', 'proxy', 'learn', 'admin', 'http'];
const TUNNEL_MODES: readonly TunnelMode[] = ['block', 'alert', 'off'];

function show(value: unknown): string {
  if (value === null || value === undefined) return 'empty';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `'${value}'`;
  return String(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Collects every problem; `finish` throws a ConfigError naming the first. */
class Problems {
  readonly list: Array<{ field: string; detail: string }> = [];
  constructor(readonly file: string) {}
  add(field: string, detail: string): void {
    this.list.push({ field, detail });
  }
  unknownKeys(field: string, value: Record<string, unknown>, allowed: readonly string[]): void {
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key)) this.add(field === '' ? key : `${field}.${key}`, `unknown key (allowed: ${allowed.join(', ')})`);
    }
  }
  finish(): void {
    const first = this.list[0];
    if (first === undefined) return;
    const all = this.list.map((p) => `${this.file}: ${p.field}: ${p.detail}`);
    const more = this.list.length > 1 ? ` (and ${this.list.length - 1} more: ${all.slice(1).join('; ')})` : '';
    throw new ConfigError(this.file, first.field, first.detail + more, all);
  }
}

function oneOf<T extends string>(problems: Problems, field: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  problems.add(field, `must be one of ${allowed.join(', ')}, not ${show(value)}`);
  return fallback;
}

function stringMap(problems: Problems, field: string, value: unknown): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isRecord(value)) {
    problems.add(field, `must be a mapping of strings, not ${show(value)}`);
    return undefined;
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') problems.add(`${field}.${k}`, `must be a string, not ${show(v)}`);
    else out[k] = v;
  }
  return out;
}

function optionalString(problems: Problems, field: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') {
    problems.add(field, `must be a non-empty string, not ${show(value)}`);
    return undefined;
  }
  return value;
}

/** Validates parsed config data; `file` names it in errors and anchors relative paths. */
export function parseConfig(data: unknown, file: string): SidecarConfig {
  const problems = new Problems(file);
  const base = dirname(resolve(file));
  const config: SidecarConfig = {
    mode: 'monitor',
    defaultAction: 'deny',
    ports: {},
    onParseError: 'pass',
    tunnels: { default: 'alert', overrides: {} },
    identities: [],
    services: [],
    export: { stdout: true },
    proxy: { ...DEFAULT_PROXY },
    learn: { ...DEFAULT_LEARN },
    admin: {},
    http: { ...DEFAULT_TARGET_OPTIONS },
  };
  if (data === null || data === undefined) return config;
  if (!isRecord(data)) {
    problems.add('', `the config must be a mapping of settings, not ${show(data)}`);
    problems.finish();
    return config;
  }
  problems.unknownKeys('', data, TOP_KEYS);
  config.mode = oneOf(problems, 'mode', data.mode, ['protect', 'monitor', 'learn'] as const, 'monitor');
  config.defaultAction = oneOf(problems, 'defaultAction', data.defaultAction, ['allow', 'deny'] as const, 'deny');
  config.onParseError = oneOf(problems, 'onParseError', data.onParseError, ['pass', 'reset'] as const, 'pass');

  if (data.ports !== undefined) {
    if (!isRecord(data.ports)) problems.add('ports', `must be a mapping of port to protocol (e.g. "80": http), not ${show(data.ports)}`);
    else {
      for (const [key, protocol] of Object.entries(data.ports)) {
        const port = Number(key);
        if (!/^\d+$/.test(key) || port < 1 || port > 65535) problems.add(`ports.${key}`, `'${key}' is not a port (1–65535)`);
        else if (typeof protocol !== 'string' || !PROTOCOLS.includes(protocol)) problems.add(`ports.${key}`, `${show(protocol)} is not a known protocol (${PROTOCOLS.join(', ')})`);
        else config.ports[port] = protocol;
      }
    }
  }

  if (typeof data.tunnels === 'string' || data.tunnels === undefined) {
    config.tunnels.default = oneOf(problems, 'tunnels', data.tunnels, TUNNEL_MODES, 'alert');
  } else if (isRecord(data.tunnels)) {
    for (const [key, mode] of Object.entries(data.tunnels)) {
      const value = oneOf(problems, `tunnels.${key}`, mode, TUNNEL_MODES, 'alert');
      if (key === 'default') config.tunnels.default = value;
      else config.tunnels.overrides[key] = value;
    }
  } else {
    problems.add('tunnels', `must be block, alert, off, or a mapping such as {default: alert, ssh: block}, not ${show(data.tunnels)}`);
  }

  if (data.rules !== undefined && data.rules !== null) {
    if (!Array.isArray(data.rules)) problems.add('rules', `must be a list of rules, not ${show(data.rules)}`);
    else config.rules = data.rules as unknown[];
  }
  const clusterRules = optionalString(problems, 'clusterRules', data.clusterRules);
  if (clusterRules !== undefined) config.clusterRules = resolve(base, clusterRules);
  const podInfo = optionalString(problems, 'podInfo', data.podInfo);
  if (podInfo !== undefined) config.podInfo = resolve(base, podInfo);

  if (data.identities !== undefined && data.identities !== null) {
    if (!Array.isArray(data.identities)) problems.add('identities', `must be a list of {ip, namespace, pod, labels, serviceAccount}, not ${show(data.identities)}`);
    else {
      data.identities.forEach((entry: unknown, i) => {
        const field = `identities[${i}]`;
        if (!isRecord(entry)) {
          problems.add(field, `must be a mapping with ip and workload fields, not ${show(entry)}`);
          return;
        }
        problems.unknownKeys(field, entry, ['ip', 'namespace', 'pod', 'labels', 'serviceAccount']);
        if (typeof entry.ip !== 'string' || isIP(entry.ip) === 0) {
          problems.add(`${field}.ip`, `${show(entry.ip)} is not an IP address`);
          return;
        }
        const identity: IdentityEntry = { ip: entry.ip };
        const namespace = optionalString(problems, `${field}.namespace`, entry.namespace);
        const pod = optionalString(problems, `${field}.pod`, entry.pod);
        const serviceAccount = optionalString(problems, `${field}.serviceAccount`, entry.serviceAccount);
        const labels = stringMap(problems, `${field}.labels`, entry.labels);
        if (namespace !== undefined) identity.namespace = namespace;
        if (pod !== undefined) identity.pod = pod;
        if (serviceAccount !== undefined) identity.serviceAccount = serviceAccount;
        if (labels !== undefined) identity.labels = labels;
        config.identities.push(identity);
      });
    }
  }

  config.services = parseServices(problems, data.services);

  if (data.identity !== undefined && data.identity !== null) {
    if (!isRecord(data.identity)) problems.add('identity', `must be a mapping with controller (host:port), tokenFile and caFile, not ${show(data.identity)}`);
    else {
      problems.unknownKeys('identity', data.identity, ['controller', 'tokenFile', 'caFile']);
      const controller = optionalString(problems, 'identity.controller', data.identity.controller);
      if (controller === undefined && data.identity.controller === undefined) problems.add('identity.controller', 'is required (host:port of the sidewall controller, e.g. sidewall-controller.sidewall:15012)');
      // host:port, or unix:/path for a controller (or node agent) on a local socket.
      else if (controller !== undefined && !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(controller) && !/^unix:\/\S+$/.test(controller)) problems.add('identity.controller', `'${controller}' is not host:port or unix:/path`);
      const tokenFile = optionalString(problems, 'identity.tokenFile', data.identity.tokenFile);
      const caFile = optionalString(problems, 'identity.caFile', data.identity.caFile);
      if (controller !== undefined) {
        config.identity = { controller };
        if (tokenFile !== undefined) config.identity.tokenFile = resolve(base, tokenFile);
        if (caFile !== undefined) config.identity.caFile = resolve(base, caFile);
      }
    }
  }

  if (data.export !== undefined && data.export !== null) {
    if (!isRecord(data.export)) problems.add('export', `must be a mapping with stdout and otlp, not ${show(data.export)}`);
    else {
      problems.unknownKeys('export', data.export, ['stdout', 'otlp']);
      if (data.export.stdout !== undefined) {
        if (typeof data.export.stdout !== 'boolean') problems.add('export.stdout', `must be true or false, not ${show(data.export.stdout)}`);
        else config.export.stdout = data.export.stdout;
      }
      const otlp = data.export.otlp;
      if (otlp !== undefined && otlp !== null) {
        if (!isRecord(otlp)) problems.add('export.otlp', `must be a mapping with endpoint, not ${show(otlp)}`);
        else {
          problems.unknownKeys('export.otlp', otlp, ['endpoint', 'insecure', 'headers']);
          const endpoint = optionalString(problems, 'export.otlp.endpoint', otlp.endpoint);
          if (endpoint === undefined && otlp.endpoint === undefined) problems.add('export.otlp.endpoint', 'is required (host:port of the OpenTelemetry Collector)');
          if (otlp.insecure !== undefined && typeof otlp.insecure !== 'boolean') problems.add('export.otlp.insecure', `must be true or false, not ${show(otlp.insecure)}`);
          const headers = stringMap(problems, 'export.otlp.headers', otlp.headers);
          if (endpoint !== undefined) {
            config.export.otlp = { endpoint };
            if (typeof otlp.insecure === 'boolean') config.export.otlp.insecure = otlp.insecure;
            if (headers !== undefined) config.export.otlp.headers = headers;
          }
        }
      }
    }
  }

  if (data.http !== undefined && data.http !== null) {
    if (!isRecord(data.http)) problems.add('http', `must be a mapping such as {escapedSlashes: reject}, not ${show(data.http)}`);
    else {
      problems.unknownKeys('http', data.http, ['escapedSlashes']);
      config.http = { escapedSlashes: oneOf(problems, 'http.escapedSlashes', data.http.escapedSlashes, ['reject', 'decode'] as const, 'reject') };
    }
  }

  if (data.proxy !== undefined && data.proxy !== null) {
    if (!isRecord(data.proxy)) problems.add('proxy', `must be a mapping of tunables, not ${show(data.proxy)}`);
    else {
      const keys = Object.keys(DEFAULT_PROXY) as Array<keyof ProxyTunables>;
      problems.unknownKeys('proxy', data.proxy, keys);
      for (const key of keys) {
        const value = data.proxy[key];
        if (value === undefined) continue;
        const isPort = key.endsWith('Port');
        const isBytes = key === 'memoryLimitBytes';
        const isQueue = key === 'nfqueue';
        const max = isPort || isQueue ? 65535 : isBytes ? Number.MAX_SAFE_INTEGER : 2_147_483_647; // setTimeout's limit
        const min = isBytes ? 0 : 1;
        if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
          problems.add(
            `proxy.${key}`,
            isPort
              ? `must be a port (1–65535), not ${show(value)}`
              : isQueue
                ? `must be an NFQUEUE number (1–65535, as given to sidewall init --nfqueue), not ${show(value)}`
                : isBytes
                  ? `must be a whole number of bytes (0: the container's memory limit), e.g. 268435456 for 256 MiB, not ${show(value)}`
                  : `must be a positive whole number${key.endsWith('Ms') ? ' of milliseconds' : ''} up to ${max}, not ${show(value)}`,
          );
        } else config.proxy[key] = value;
      }
      const listenerPorts: Array<keyof ProxyTunables> = ['outboundPort', 'inboundPort', 'adminPort', 'dnsPort'];
      const seen = new Map<number, string>();
      for (const key of listenerPorts) {
        const other = seen.get(config.proxy[key]);
        if (other !== undefined) problems.add(`proxy.${key}`, `${config.proxy[key]} is also proxy.${other}; each listener needs its own port`);
        seen.set(config.proxy[key], key);
      }
    }
  }
  if (data.learn !== undefined && data.learn !== null) {
    if (!isRecord(data.learn)) problems.add('learn', `must be a mapping with stateFile, maxServices, maxPaths, maxSiblings, saveIntervalMs, not ${show(data.learn)}`);
    else {
      problems.unknownKeys('learn', data.learn, Object.keys(DEFAULT_LEARN));
      const stateFile = optionalString(problems, 'learn.stateFile', data.learn.stateFile);
      if (stateFile !== undefined) config.learn.stateFile = resolve(base, stateFile);
      for (const key of ['maxServices', 'maxPaths', 'maxSiblings', 'saveIntervalMs'] as const) {
        const value = data.learn[key];
        if (value === undefined) continue;
        if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 2_147_483_647) {
          problems.add(`learn.${key}`, `must be a positive whole number${key.endsWith('Ms') ? ' of milliseconds' : ''}, not ${show(value)}`);
        } else config.learn[key] = value;
      }
    }
  }
  if (data.admin !== undefined && data.admin !== null) {
    if (!isRecord(data.admin)) problems.add('admin', `must be a mapping with tokenFile, not ${show(data.admin)}`);
    else {
      problems.unknownKeys('admin', data.admin, ['tokenFile']);
      const tokenFile = optionalString(problems, 'admin.tokenFile', data.admin.tokenFile);
      if (tokenFile !== undefined) config.admin.tokenFile = resolve(base, tokenFile);
    }
  }
  problems.finish();
  return config;
}

/** Reads and validates the config file; undefined → all defaults. Throws ConfigError. */
export function loadConfig(path: string | undefined): SidecarConfig {
  if (path === undefined) return parseConfig(undefined, '(defaults)');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (error as Error).message;
    throw new ConfigError(path, '', `cannot read the config: ${reason}`);
  }
  const parsed = parseRuleText(text, path);
  if (!parsed.ok) throw new ConfigError(path, '', parsed.issues[0]!.message);
  const config = parseConfig(parsed.value, path);
  config.file = resolve(path);
  return config;
}

/** The tunnel handling for a protocol or detection kind ('ssh', 'http-connect', 'dns', ...). */
export function tunnelModeFor(tunnels: TunnelPolicy, name: string): TunnelMode {
  return tunnels.overrides[name] ?? tunnels.default;
}
