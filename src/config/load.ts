// The sidecar config file (PRODUCT.md "Sidecar config"), YAML or JSON; every key optional.
// Structure is checked here; the rules themselves are checked by the policy store, which sees
// both tiers. Relative `clusterRules` and `podInfo` paths are relative to the config file.

import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { compileSchema, generatedFromFile, validatorCache } from '../schema/validator.js';
import { CONFIG_FORMATS, CONFIG_PROPERTIES, configSchema } from './config-schema.js';
import type { ServiceEntry } from '../identity/service-directory.js';
import { servicesProblems, toServiceEntries } from './services.js';
import { parseRuleText } from '../policy/source.js';
import type { Direction, Mode } from '../policy/types.js';
import { DEFAULT_TARGET_OPTIONS, type TargetOptions } from '../protocols/http1/request-target.js';
import { DEFAULT_CAPTURE, type CaptureSettings } from '../capture/store.js';
import { BUILTIN_SENSOR_NAMES, DEFAULT_DLP, type DlpSettings, type DlpWhere } from '../content/dlp/index.js';

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
  // The injector's sidewall-learn emptyDir (injector/mutate.ts LEARN_STATE_DIR): one per pod.
  stateFile: '/var/lib/sidewall/learn/model.json',
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
  /** Packet capture (README "Packet capture"). */
  capture: CaptureSettings;
  /** DLP sensors (PRODUCT.md config `dlp`); absent: no scanning unless a rule names sensors. */
  dlp?: DlpSettings;
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

export const TOP_KEYS = Object.keys(CONFIG_PROPERTIES);

// The build's validator, read from its file when a config is checked (not kept: issue 18 memory).
const validator = validatorCache(() => compileSchema(configSchema(), { formats: CONFIG_FORMATS, generated: generatedFromFile(new URL('../schema/generated/config.js', import.meta.url)) }));

/** Every problem in `data` as {field, detail}; rules are left to the policy store. */
function configProblems(data: unknown): Array<{ field: string; detail: string }> {
  if (data === undefined) return [];
  const problems = validator().issues(data)
    // The policy store reports rule problems with the rule's index and id (both tiers at once).
    .filter((issue) => !(issue.path[0] === 'rules' && issue.path.length > 1))
    .map((issue) => ({ field: issue.field, detail: issue.message }));
  if (isRecord(data)) problems.push(...servicesProblems(data.services), ...dlpProblems(data.dlp));
  if (problems.length > 0 || !isRecord(data) || !isRecord(data.proxy)) return problems;
  // Between fields: each listener needs its own port.
  const proxy = { ...DEFAULT_PROXY, ...(data.proxy as Partial<ProxyTunables>) };
  const seen = new Map<number, string>();
  for (const key of ['outboundPort', 'inboundPort', 'adminPort', 'dnsPort'] as const) {
    const other = seen.get(proxy[key]);
    if (other !== undefined) problems.push({ field: `proxy.${key}`, detail: `${proxy[key]} is also proxy.${other}; each listener needs its own port` });
    seen.set(proxy[key], key);
  }
  return problems;
}

/** `dlp.sensors` name built-ins or patterns; a pattern's name is not a built-in's (the schema checked the rest). */
function dlpProblems(value: unknown): Array<{ field: string; detail: string }> {
  if (!isRecord(value)) return [];
  const problems: Array<{ field: string; detail: string }> = [];
  const names = new Set(BUILTIN_SENSOR_NAMES);
  if (Array.isArray(value.patterns)) {
    value.patterns.forEach((p: unknown, i) => {
      if (!isRecord(p) || typeof p.name !== 'string') return;
      if (names.has(p.name)) problems.push({ field: `dlp.patterns[${i}].name`, detail: `'${p.name}' is already a sensor name; choose another` });
      names.add(p.name);
    });
  }
  if (Array.isArray(value.sensors)) {
    value.sensors.forEach((s: unknown, i) => {
      if (typeof s === 'string' && !names.has(s)) problems.push({ field: `dlp.sensors[${i}]`, detail: `'${s}' is not a sensor (${[...names].join(', ')})` });
    });
  }
  return problems;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Validates parsed config data; `file` names it in errors and anchors relative paths. */
export function parseConfig(data: unknown, file: string): SidecarConfig {
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
    capture: { ...DEFAULT_CAPTURE },
  };
  const problems = configProblems(data);
  const first = problems[0];
  if (first !== undefined) {
    const all = problems.map((p) => (p.field === '' ? `${file}: ${p.detail}` : `${file}: ${p.field}: ${p.detail}`));
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more: ${all.slice(1).join('; ')})` : '';
    throw new ConfigError(file, first.field, first.detail + more, all);
  }
  if (!isRecord(data)) return config;
  // From here on the data has the schema's shape: only defaults and paths are applied.
  const d = data as ConfigDocument;
  if (d.mode !== undefined) config.mode = d.mode;
  if (d.defaultAction !== undefined) config.defaultAction = d.defaultAction;
  if (d.onParseError !== undefined) config.onParseError = d.onParseError;
  for (const [port, protocol] of Object.entries(d.ports ?? {})) config.ports[Number(port)] = protocol;
  if (typeof d.tunnels === 'string') config.tunnels.default = d.tunnels;
  else if (d.tunnels !== undefined) {
    for (const [key, mode] of Object.entries(d.tunnels)) {
      if (key === 'default') config.tunnels.default = mode;
      else config.tunnels.overrides[key] = mode;
    }
  }
  if (d.rules !== undefined && d.rules !== null) config.rules = d.rules;
  if (d.clusterRules !== undefined) config.clusterRules = resolve(base, d.clusterRules);
  if (d.podInfo !== undefined) config.podInfo = resolve(base, d.podInfo);
  for (const entry of d.identities ?? []) config.identities.push({ ...entry });
  config.services = toServiceEntries(d.services);
  if (d.identity !== undefined && d.identity !== null) {
    config.identity = { controller: d.identity.controller };
    if (d.identity.tokenFile !== undefined) config.identity.tokenFile = resolve(base, d.identity.tokenFile);
    if (d.identity.caFile !== undefined) config.identity.caFile = resolve(base, d.identity.caFile);
  }
  if (d.export !== undefined && d.export !== null) {
    if (d.export.stdout !== undefined) config.export.stdout = d.export.stdout;
    const otlp = d.export.otlp;
    if (otlp !== undefined && otlp !== null) {
      config.export.otlp = { endpoint: otlp.endpoint };
      if (otlp.insecure !== undefined) config.export.otlp.insecure = otlp.insecure;
      if (otlp.headers !== undefined) config.export.otlp.headers = otlp.headers;
    }
  }
  if (d.http !== undefined && d.http !== null) config.http = { escapedSlashes: d.http.escapedSlashes ?? 'reject' };
  if (d.proxy !== undefined && d.proxy !== null) Object.assign(config.proxy, d.proxy);
  if (d.learn !== undefined && d.learn !== null) {
    const { stateFile, ...limits } = d.learn;
    Object.assign(config.learn, limits);
    if (stateFile !== undefined) config.learn.stateFile = resolve(base, stateFile);
  }
  if (d.admin?.tokenFile !== undefined) config.admin.tokenFile = resolve(base, d.admin.tokenFile);
  if (d.capture !== undefined && d.capture !== null) {
    if (d.capture.onAlert !== undefined) config.capture.onAlert = d.capture.onAlert;
    if (d.capture.maxBytes !== undefined) config.capture.maxBytes = byteSize(d.capture.maxBytes) ?? config.capture.maxBytes;
    if (d.capture.preBufferBytes !== undefined) config.capture.preBufferBytes = byteSize(d.capture.preBufferBytes) ?? config.capture.preBufferBytes;
    if (d.capture.dir !== undefined) config.capture.dir = resolve(base, d.capture.dir);
  }
  if (d.dlp !== undefined && d.dlp !== null) {
    const patterns = (d.dlp.patterns ?? []).map((p) => ({ ...p }));
    config.dlp = {
      ...DEFAULT_DLP,
      action: d.dlp.action ?? DEFAULT_DLP.action,
      // Default: every built-in sensor and every pattern.
      sensors: [...new Set(d.dlp.sensors ?? [...BUILTIN_SENSOR_NAMES, ...patterns.map((p) => p.name)])],
      patterns,
      directions: d.dlp.directions ?? [...DEFAULT_DLP.directions],
      scan: d.dlp.scan ?? [...DEFAULT_DLP.scan],
      maxBytes: d.dlp.maxBytes === undefined ? DEFAULT_DLP.maxBytes : (byteSize(d.dlp.maxBytes) ?? DEFAULT_DLP.maxBytes),
      maxRatio: d.dlp.maxRatio ?? DEFAULT_DLP.maxRatio,
      holdMs: d.dlp.holdMs ?? DEFAULT_DLP.holdMs,
    };
  }
  return config;
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, ki: 1024, kib: 1024, m: 1e6, mb: 1e6, mi: 1024 ** 2, mib: 1024 ** 2, g: 1e9, gb: 1e9, gi: 1024 ** 3, gib: 1024 ** 3 };

/** A byte count: a whole number, or one with a unit (64MiB, 64Mi, 500KB); undefined when it is not one. */
export function byteSize(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = /^\s*(\d+)\s*([a-zA-Z]*)\s*$/.exec(value);
  const unit = m === null ? undefined : SIZE_UNITS[m[2]!.toLowerCase()];
  if (m === null || unit === undefined) return undefined;
  const n = Number(m[1]) * unit;
  return Number.isSafeInteger(n) ? n : undefined;
}

/** The config document as the schema admits it (nullable sections as YAML writes `key:`). */
interface ConfigDocument {
  mode?: Mode;
  defaultAction?: 'allow' | 'deny';
  onParseError?: 'pass' | 'reset';
  ports?: Record<string, string>;
  tunnels?: TunnelMode | Record<string, TunnelMode>;
  rules?: unknown[] | null;
  clusterRules?: string;
  podInfo?: string;
  identities?: IdentityEntry[] | null;
  services?: unknown[] | null;
  identity?: { controller: string; tokenFile?: string; caFile?: string } | null;
  export?: { stdout?: boolean; otlp?: { endpoint: string; insecure?: boolean; headers?: Record<string, string> } | null } | null;
  proxy?: Partial<ProxyTunables> | null;
  learn?: Partial<LearnConfig> | null;
  admin?: { tokenFile?: string } | null;
  http?: { escapedSlashes?: 'reject' | 'decode' } | null;
  capture?: { onAlert?: boolean; maxBytes?: number | string; dir?: string; preBufferBytes?: number | string } | null;
  dlp?: {
    action?: 'alert' | 'block';
    sensors?: string[];
    patterns?: Array<{ name: string; pattern: string; maxLength?: number }>;
    directions?: Direction[];
    scan?: DlpWhere[];
    maxBytes?: number | string;
    maxRatio?: number;
    holdMs?: number;
  } | null;
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
  return configFromText(text, path);
}

/**
 * Validates config file text already read (a reload parses the very text it fingerprinted). Throws
 * ConfigError. An empty file is refused, at start as on reload: it would mean the defaults
 * (monitor mode, no rules), and a file is empty for a moment while a writer that truncates first
 * rewrites it, or after a mistaken edit; a firewall does not open on either.
 */
export function configFromText(text: string, path: string): SidecarConfig {
  if (text.trim() === '') throw new ConfigError(path, '', 'the config file is empty (the defaults — monitor mode, no rules — are not taken from an empty file: write `{}` or `mode: monitor` to ask for them)');
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
