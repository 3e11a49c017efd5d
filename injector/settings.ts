// What the injector puts into pods, and who may change policy annotations. In a cluster these
// come from the chart's ConfigMap (`injector.yaml`, key by key the same names as below); every
// key is optional and falls back to defaultInjectorSettings().
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { ResourceRequirements } from './kube-types.js';
import { compileSchema, type CompiledSchema } from '../src/schema/validator.js';
import * as generatedSettings from '../src/schema/generated/injector-settings.js';
import { SETTINGS_FORMATS, settingsSchema } from './settings-schema.js';
import { byteSize } from '../src/config/load.js';
import { DEFAULT_CAPTURE } from '../src/capture/store.js';

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
  /**
   * Present: sidewall-proxy gets its own capture volume (mutate.ts CAPTURE_DIR) sized from the
   * sidecar config's capture.maxBytes (bytes). Absent: captures use the sidecar's /tmp.
   */
  capture?: CaptureVolumeSettings;
}

export interface CaptureVolumeSettings {
  /** The sidecar config's capture.maxBytes, in bytes. */
  maxBytes: number;
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

let validator: CompiledSchema | undefined;

/** Every problem in a settings document, as 'FIELD: problem'. */
export function injectorSettingsProblems(document: unknown): string[] {
  validator ??= compileSchema(settingsSchema(), { formats: SETTINGS_FORMATS, generated: generatedSettings });
  return validator.issues(document).map((issue) => (issue.field === '' ? issue.message : `${issue.field}: ${issue.message}`));
}

/** Merges a settings document (already parsed) over the defaults; throws InjectorSettingsError. */
export function resolveInjectorSettings(document: unknown, source: string): InjectorSettings {
  const settings = defaultInjectorSettings();
  if (document === null || document === undefined) return settings;
  const problems = injectorSettingsProblems(document);
  if (problems.length > 0) throw new InjectorSettingsError(source, problems);
  // The document has the schema's shape from here on: apply it over the defaults.
  const { annotationGuard, stepAround, identity, proxyNodeOptions, capture, ...plain } = document as Omit<Partial<InjectorSettings>, 'capture'> & {
    identity?: Partial<IdentityCredentialSettings> | null | false;
    capture?: { maxBytes?: number | string } | null | false;
  };
  Object.assign(settings, plain);
  if (annotationGuard !== undefined) Object.assign(settings.annotationGuard, annotationGuard);
  if (stepAround !== undefined) Object.assign(settings.stepAround, stepAround);
  if (proxyNodeOptions !== undefined) settings.proxyNodeOptions = proxyNodeOptions.trim().split(/\s+/).filter((flag) => flag !== '').join(' ');
  if (identity === null || identity === false) delete settings.identity;
  else if (identity !== undefined) {
    settings.identity = { audience: identity.audience ?? 'sidewall-controller', expirationSeconds: identity.expirationSeconds ?? 3600 };
    if (typeof identity.caConfigMap === 'string') settings.identity.caConfigMap = identity.caConfigMap;
  }
  if (capture !== undefined && capture !== null && capture !== false) {
    // The schema admits only sizes byteSize() reads; the sidecar's default when none is given.
    settings.capture = { maxBytes: capture.maxBytes === undefined ? DEFAULT_CAPTURE.maxBytes : (byteSize(capture.maxBytes) ?? DEFAULT_CAPTURE.maxBytes) };
  }
  for (const part of ['proxyResources', 'initResources'] as const) {
    // A copy (never the caller's document); quantities may be numbers in YAML, the pod spec wants strings.
    const given = settings[part];
    const resources: ResourceRequirements = {};
    for (const section of ['requests', 'limits'] as const) {
      const map = given[section];
      if (map !== undefined && map !== null) resources[section] = Object.fromEntries(Object.entries(map).map(([k, v]) => [k, String(v)]));
    }
    settings[part] = resources;
  }
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
