// What the injector puts into pods, and who may change policy annotations. In a cluster these
// come from the chart's ConfigMap (`injector.yaml`, key by key the same names as below); every
// key is optional and falls back to defaultInjectorSettings().
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { ResourceRequirements } from './kube-types.js';
import { isCidr } from './annotations.js';

export type IptablesBackend = 'auto' | 'nft' | 'legacy';
export type PullPolicy = 'Always' | 'IfNotPresent' | 'Never';

export interface AnnotationGuardSettings {
  /** Deny UPDATEs that change `annotations` unless the user or one of the groups is allowed. */
  enabled: boolean;
  annotations: string[];
  allowedUsers: string[];
  allowedGroups: string[];
  /**
   * Labels guarded like the annotations: `sidewall.io/inject=false` as a label keeps a pod from
   * even reaching the mutating webhook (its objectSelector), so setting it is an opt-out.
   */
  labels: string[];
  /**
   * Users whose CREATEs copy a pod template the guard already checked when the workload was
   * created or changed (the kube-controller-manager's controllers): a ReplicaSet's pods carry
   * the template's annotations and must not be refused for it.
   */
  trustedCreators: string[];
}

/** What the webhooks do about app containers that could step around the sidecar (issue 13). */
export interface StepAroundSettings {
  /** Off: no refusals and no capability drops (clusters that police this another way). */
  enabled: boolean;
  /**
   * App containers that may run as root (or gain it through a setuid binary) and keep
   * CAP_SETUID/CAP_SETGID could take the proxy's uid or gid: `drop` adds
   * `capabilities.drop: [SETUID, SETGID]` to them at injection; `refuse` denies the pod.
   */
  rootContainers: 'drop' | 'refuse';
  /**
   * Add NET_RAW to every app container's `capabilities.drop` (in containerd's and CRI-O's default
   * set): raw sockets, and since Linux 5.17 SO_MARK, the proxy's identity in iptables.
   */
  dropNetRaw: boolean;
  /** Namespaces the security team exempts from these checks (chart values only; see README "Security"). */
  exemptNamespaces: string[];
}

/**
 * Credentials the sidecar needs for the identity controller's stream (issue 8). The sidecar
 * config that names the controller comes from the chart's ConfigMap; these are the files it
 * points at (IDENTITY_TOKEN_FILE, CONTROLLER_CA_FILE in mutate.ts).
 */
export interface IdentityCredentialSettings {
  /** Audience of the projected service-account token; the controller's TokenReview requires it. */
  audience: string;
  /** Token lifetime; the kubelet renews it at 80 %. Kubernetes accepts 600 s and more. */
  expirationSeconds: number;
  /** ConfigMap (in the pod's namespace) whose `ca.crt` verifies the controller's certificate; absent: no CA mounted (plaintext controller). */
  caConfigMap?: string;
}

export interface InjectorSettings {
  image: string;
  imagePullPolicy: PullPolicy;
  /** Sidecar as an init container with restartPolicy Always (Kubernetes ≥ 1.29 by default). */
  nativeSidecar: boolean;
  proxyUid: number;
  proxyGid: number;
  inboundPort: number;
  outboundPort: number;
  adminPort: number;
  redirectDns: boolean;
  iptablesBackend: IptablesBackend;
  /** Cluster-wide exclusions, merged with the pod's annotations. */
  excludeInboundPorts: number[];
  excludeOutboundPorts: number[];
  excludeOutboundCidrs: string[];
  proxyResources: ResourceRequirements;
  initResources: ResourceRequirements;
  /**
   * Node flags for sidewall-proxy (its NODE_OPTIONS), V8 heap sizes only; empty: Node's defaults.
   * `--max-semi-space-size=1` keeps the proxy under ≈ 90 MiB with 1,000 open connections instead
   * of ≈ 120–130 MiB, for ≈ 7–16 % more CPU per request (perf/RESULTS.md, "Memory").
   */
  proxyNodeOptions: string;
  /** ConfigMaps (in the pod's namespace) mounted into the sidecar. */
  sidecarConfigMap: string;
  clusterRulesConfigMap: string;
  /** Rewrite kubelet httpGet/tcpSocket probes through the sidecar admin port. */
  rewriteProbes: boolean;
  annotationGuard: AnnotationGuardSettings;
  stepAround: StepAroundSettings;
  /**
   * Prepended to sidewall-proxy's command so the proxy holds CAP_NET_ADMIN as uid 1337 (README
   * "Security", "The proxy's capability"): the image's copy of setpriv carries the file
   * capability cap_net_admin=p and raises it into the inheritable and ambient sets before it
   * execs `sidewall`. Empty: `sidewall` is run directly (a runtime that grants ambient caps).
   */
  proxyLauncher: string[];
  /** Absent: no controller credentials are mounted (clusters without `sidewall controller`). */
  identity?: IdentityCredentialSettings;
}

export function defaultInjectorSettings(): InjectorSettings {
  return {
    image: 'localhost/sidewall:0.1.0',
    imagePullPolicy: 'IfNotPresent',
    nativeSidecar: true,
    proxyUid: 1337,
    proxyGid: 1337,
    inboundPort: 15006,
    outboundPort: 15001,
    adminPort: 15000,
    redirectDns: true,
    iptablesBackend: 'auto',
    excludeInboundPorts: [],
    excludeOutboundPorts: [],
    excludeOutboundCidrs: [],
    proxyResources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } },
    initResources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '64Mi' } },
    proxyNodeOptions: '',
    sidecarConfigMap: 'sidewall-sidecar-config',
    clusterRulesConfigMap: 'sidewall-cluster-rules',
    rewriteProbes: true,
    annotationGuard: {
      enabled: true,
      annotations: [
        'sidewall.io/rules',
        'sidewall.io/mode',
        'sidewall.io/inject',
        'sidewall.io/exclude-inbound-ports',
        'sidewall.io/exclude-outbound-ports',
        'sidewall.io/exclude-outbound-cidrs',
      ],
      allowedUsers: [],
      allowedGroups: ['system:masters', 'sidewall:policy-admins'],
      labels: ['sidewall.io/inject'],
      trustedCreators: [...KUBE_CONTROLLER_USERS],
    },
    stepAround: { enabled: true, rootContainers: 'drop', dropNetRaw: true, exemptNamespaces: [] },
    proxyLauncher: [...DEFAULT_PROXY_LAUNCHER],
  };
}

/** The kube-controller-manager's identities that create Pods, ReplicaSets and Jobs from templates. */
export const KUBE_CONTROLLER_USERS = [
  'system:kube-controller-manager',
  'system:serviceaccount:kube-system:replicaset-controller',
  'system:serviceaccount:kube-system:replication-controller',
  'system:serviceaccount:kube-system:deployment-controller',
  'system:serviceaccount:kube-system:statefulset-controller',
  'system:serviceaccount:kube-system:daemon-set-controller',
  'system:serviceaccount:kube-system:job-controller',
  'system:serviceaccount:kube-system:cronjob-controller',
] as const;

/** The image's setpriv copy with cap_net_admin=p (the "image" build installs it). */
export const PROXY_CAPS_LAUNCHER = '/usr/local/bin/sidewall-caps';
export const DEFAULT_PROXY_LAUNCHER = [PROXY_CAPS_LAUNCHER, '--inh-caps=+net_admin', '--ambient-caps=+net_admin', '--'] as const;

export class InjectorSettingsError extends Error {
  readonly code = 'SIDEWALL_INJECTOR_SETTINGS';
  constructor(readonly source: string, readonly problems: string[]) {
    super(`invalid injector settings in ${source}:\n  ${problems.join('\n  ')}`);
    this.name = 'InjectorSettingsError';
  }
}

type Reader = (key: string, value: unknown, problems: string[]) => unknown;

const isPort = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 65535;

function readResources(key: string, value: unknown, problems: string[]): ResourceRequirements | undefined {
  if (typeof value !== 'object' || value === null) {
    problems.push(`${key}: expected {requests, limits}`);
    return undefined;
  }
  const out: ResourceRequirements = {};
  for (const part of ['requests', 'limits'] as const) {
    const section = (value as Record<string, unknown>)[part];
    if (section === undefined || section === null) continue;
    if (typeof section !== 'object') { problems.push(`${key}.${part}: expected a map of resource to quantity`); continue; }
    const map: Record<string, string> = {};
    for (const [resource, quantity] of Object.entries(section)) {
      if (typeof quantity !== 'string' && typeof quantity !== 'number') { problems.push(`${key}.${part}.${resource}: expected a quantity`); continue; }
      map[resource] = String(quantity);
    }
    out[part] = map;
  }
  return out;
}

/** The V8 heap flags proxyNodeOptions may carry (NODE_OPTIONS could otherwise load any code). */
const NODE_HEAP_FLAG = /^--(max-semi-space-size|min-semi-space-size|max-old-space-size)=\d{1,6}$/;

function readNodeOptions(key: string, value: unknown, problems: string[]): string | undefined {
  if (typeof value !== 'string') {
    problems.push(`${key}: expected a string of node flags, e.g. "--max-semi-space-size=1"`);
    return undefined;
  }
  const flags = value.trim().split(/\s+/).filter((flag) => flag !== '');
  const bad = flags.filter((flag) => !NODE_HEAP_FLAG.test(flag));
  if (bad.length > 0) {
    problems.push(`${key}: ${bad.map((flag) => JSON.stringify(flag)).join(', ')} not allowed; only --max-semi-space-size=MiB, --min-semi-space-size=MiB and --max-old-space-size=MiB`);
    return undefined;
  }
  return flags.join(' ');
}

function stringList(key: string, value: unknown, problems: string[]): string[] | undefined {
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    problems.push(`${key}: expected a list of strings`);
    return undefined;
  }
  return value as string[];
}

const readers: Record<string, Reader> = {
  image: (key, v, p) => (typeof v === 'string' && v.length > 0 ? v : void p.push(`${key}: expected an image reference`)),
  imagePullPolicy: (key, v, p) => (v === 'Always' || v === 'IfNotPresent' || v === 'Never' ? v : void p.push(`${key}: expected Always, IfNotPresent or Never`)),
  nativeSidecar: (key, v, p) => (typeof v === 'boolean' ? v : void p.push(`${key}: expected true or false`)),
  redirectDns: (key, v, p) => (typeof v === 'boolean' ? v : void p.push(`${key}: expected true or false`)),
  rewriteProbes: (key, v, p) => (typeof v === 'boolean' ? v : void p.push(`${key}: expected true or false`)),
  proxyUid: (key, v, p) => (Number.isInteger(v) && (v as number) > 0 ? v : void p.push(`${key}: expected a non-zero uid`)),
  proxyGid: (key, v, p) => (Number.isInteger(v) && (v as number) > 0 ? v : void p.push(`${key}: expected a non-zero gid`)),
  inboundPort: (key, v, p) => (isPort(v) ? v : void p.push(`${key}: expected a port 1-65535`)),
  outboundPort: (key, v, p) => (isPort(v) ? v : void p.push(`${key}: expected a port 1-65535`)),
  adminPort: (key, v, p) => (isPort(v) ? v : void p.push(`${key}: expected a port 1-65535`)),
  iptablesBackend: (key, v, p) => (v === 'auto' || v === 'nft' || v === 'legacy' ? v : void p.push(`${key}: expected auto, nft or legacy`)),
  excludeInboundPorts: (key, v, p) => (Array.isArray(v) && v.every(isPort) ? v : void p.push(`${key}: expected a list of ports`)),
  excludeOutboundPorts: (key, v, p) => (Array.isArray(v) && v.every(isPort) ? v : void p.push(`${key}: expected a list of ports`)),
  excludeOutboundCidrs: (key, v, p) =>
    Array.isArray(v) && v.every((item) => typeof item === 'string' && isCidr(item)) ? v : void p.push(`${key}: expected a list of CIDRs`),
  proxyResources: readResources,
  initResources: readResources,
  proxyNodeOptions: readNodeOptions,
  sidecarConfigMap: (key, v, p) => (typeof v === 'string' && v.length > 0 ? v : void p.push(`${key}: expected a ConfigMap name`)),
  proxyLauncher: (key, v, p) =>
    Array.isArray(v) && v.every((item) => typeof item === 'string' && item.length > 0)
      ? v
      : void p.push(`${key}: expected a list of non-empty strings (the command prepended to sidewall-proxy's, e.g. ${JSON.stringify(DEFAULT_PROXY_LAUNCHER)}), or [] for none`),
  clusterRulesConfigMap: (key, v, p) => (typeof v === 'string' && v.length > 0 ? v : void p.push(`${key}: expected a ConfigMap name`)),
};

// A DNS-1123 label: what Kubernetes accepts as a namespace name.
const NAMESPACE_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function readStepAround(value: unknown, target: StepAroundSettings, problems: string[]): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.push('stepAround: expected a map with enabled, rootContainers, dropNetRaw and exemptNamespaces');
    return;
  }
  for (const [field, fieldValue] of Object.entries(value as Record<string, unknown>)) {
    const key = `stepAround.${field}`;
    if (field === 'enabled' || field === 'dropNetRaw') {
      if (typeof fieldValue === 'boolean') target[field] = fieldValue;
      else problems.push(`${key}: expected true or false`);
    } else if (field === 'rootContainers') {
      if (fieldValue === 'drop' || fieldValue === 'refuse') target.rootContainers = fieldValue;
      else problems.push(`${key}: expected drop (add capabilities.drop [SETUID, SETGID]) or refuse (deny the pod), not ${JSON.stringify(fieldValue)}`);
    } else if (field === 'exemptNamespaces') {
      const list = stringList(key, fieldValue, problems);
      if (list === undefined) continue;
      const bad = list.filter((name) => !NAMESPACE_NAME.test(name));
      if (bad.length > 0) problems.push(`${key}: ${bad.map((name) => JSON.stringify(name)).join(', ')} not a namespace name (lower-case letters, digits and '-')`);
      else target.exemptNamespaces = list;
    } else {
      problems.push(`${key}: unknown key (expected enabled, rootContainers, dropNetRaw, exemptNamespaces)`);
    }
  }
}

/** Kubernetes refuses projected tokens shorter than 10 minutes (TokenRequest minimum). */
const MIN_TOKEN_SECONDS = 600;
const MAX_TOKEN_SECONDS = 2 ** 32 - 1;

function readIdentity(key: string, value: unknown, problems: string[]): IdentityCredentialSettings | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.push(`${key}: expected a map with audience, expirationSeconds and caConfigMap`);
    return undefined;
  }
  const map = value as Record<string, unknown>;
  const before = problems.length;
  for (const field of Object.keys(map)) {
    if (field !== 'audience' && field !== 'expirationSeconds' && field !== 'caConfigMap') problems.push(`${key}.${field}: unknown key`);
  }
  const audience = map.audience ?? 'sidewall-controller';
  if (typeof audience !== 'string' || audience.length === 0) problems.push(`${key}.audience: expected a non-empty string, the audience the controller checks`);
  const expirationSeconds = map.expirationSeconds ?? 3600;
  if (!Number.isInteger(expirationSeconds) || (expirationSeconds as number) < MIN_TOKEN_SECONDS || (expirationSeconds as number) > MAX_TOKEN_SECONDS) {
    problems.push(`${key}.expirationSeconds: expected whole seconds, at least ${MIN_TOKEN_SECONDS} (the Kubernetes minimum), not ${JSON.stringify(expirationSeconds)}`);
  }
  const caConfigMap = map.caConfigMap;
  if (caConfigMap !== undefined && caConfigMap !== null && (typeof caConfigMap !== 'string' || caConfigMap.length === 0)) {
    problems.push(`${key}.caConfigMap: expected a ConfigMap name`);
  }
  if (problems.length > before) return undefined;
  const settings: IdentityCredentialSettings = { audience: audience as string, expirationSeconds: expirationSeconds as number };
  if (typeof caConfigMap === 'string') settings.caConfigMap = caConfigMap;
  return settings;
}

/** Merges a settings document (already parsed) over the defaults; throws InjectorSettingsError. */
export function resolveInjectorSettings(document: unknown, source: string): InjectorSettings {
  const settings = defaultInjectorSettings();
  if (document === null || document === undefined) return settings;
  const problems: string[] = [];
  if (typeof document !== 'object' || Array.isArray(document)) throw new InjectorSettingsError(source, ['expected a YAML map at the top level']);
  const target = settings as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(document as Record<string, unknown>)) {
    if (key === 'annotationGuard') {
      if (typeof value !== 'object' || value === null) { problems.push('annotationGuard: expected a map'); continue; }
      const guard = value as Record<string, unknown>;
      for (const [guardKey, guardValue] of Object.entries(guard)) {
        if (guardKey === 'enabled') {
          if (typeof guardValue === 'boolean') settings.annotationGuard.enabled = guardValue;
          else problems.push('annotationGuard.enabled: expected true or false');
        } else if (guardKey === 'annotations' || guardKey === 'allowedUsers' || guardKey === 'allowedGroups' || guardKey === 'labels' || guardKey === 'trustedCreators') {
          const list = stringList(`annotationGuard.${guardKey}`, guardValue, problems);
          if (list !== undefined) settings.annotationGuard[guardKey] = list;
        } else {
          problems.push(`annotationGuard.${guardKey}: unknown key`);
        }
      }
      continue;
    }
    if (key === 'stepAround') {
      readStepAround(value, settings.stepAround, problems);
      continue;
    }
    if (key === 'identity') {
      // null or false: explicitly off (the chart with controller.enabled=false writes nothing).
      if (value === null || value === false) { delete settings.identity; continue; }
      const identity = readIdentity('identity', value, problems);
      if (identity !== undefined) settings.identity = identity;
      continue;
    }
    const reader = readers[key];
    if (reader === undefined) { problems.push(`${key}: unknown key`); continue; }
    const parsed = reader(key, value, problems);
    if (parsed !== undefined) target[key] = parsed;
  }
  if (problems.length > 0) throw new InjectorSettingsError(source, problems);
  return settings;
}

export function loadInjectorSettings(file: string): InjectorSettings {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InjectorSettingsError(file, [`cannot read: ${(err as Error).message}`]);
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (err) {
    throw new InjectorSettingsError(file, [`not YAML: ${(err as Error).message}`]);
  }
  return resolveInjectorSettings(document, file);
}
