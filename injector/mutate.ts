// The mutating half of the admission webhook: what `sidewall-init` and `sidewall-proxy` look
// like in a pod, expressed as an RFC 6902 JSON Patch against the pod the API server sent.
// Pure: no I/O, so the demo can run the same code on its own pods.
import type { Container, EnvVar, Pod, ResourceRequirements, Volume } from './kube-types.js';
import { pointer, type JsonPatchOp } from './json-patch.js';
import { ANNOTATION, STATUS_INJECTED, formatAnnotationIssue, readPodKnobs, type AnnotationIssue, type PodKnobs } from './annotations.js';
import { APP_PROBES_ENV, rewriteAppProbes } from './probes.js';
import type { InjectorSettings } from './settings.js';
import { capabilityDropPatch, formatFinding, stepAroundFindings, type StepAroundOptions } from './step-around.js';

export const INIT_CONTAINER = 'sidewall-init';
export const PROXY_CONTAINER = 'sidewall-proxy';

export const SIDECAR_CONFIG_DIR = '/etc/sidewall/config';
export const SIDECAR_CONFIG_FILE = `${SIDECAR_CONFIG_DIR}/config.yaml`;
export const CLUSTER_RULES_DIR = '/etc/sidewall/cluster';
export const POD_INFO_DIR = '/etc/sidewall/pod';
/** The projected service-account token the sidecar presents to the identity controller. */
export const IDENTITY_TOKEN_DIR = '/var/run/secrets/sidewall';
export const IDENTITY_TOKEN_FILE = `${IDENTITY_TOKEN_DIR}/token`;
/** The CA bundle that verifies the identity controller's serving certificate. */
export const CONTROLLER_CA_DIR = '/etc/sidewall/ca';
export const CONTROLLER_CA_FILE = `${CONTROLLER_CA_DIR}/ca.crt`;
/**
 * Learn mode's model (learn.stateFile, src/config/load.ts DEFAULT_LEARN): the pod's own emptyDir,
 * never a folder other sidecars on the node share. Kept in step with DEFAULT_LEARN by a unit test.
 */
export const LEARN_STATE_DIR = '/var/lib/sidewall/learn';
/**
 * Packet captures (README "Packet capture"): the pod's own emptyDir when the injector settings
 * carry `capture` (the chart writes it, and capture.dir = this folder, when sidecar.config has a
 * `capture` block). Without it captures go to the sidecar's 16 MiB memory-backed /tmp.
 */
export const CAPTURE_DIR = '/var/lib/sidewall/captures';

const MIB = 1024 * 1024;
/** The most capture files the store keeps (src/capture/store.ts MAX_STORED). */
const CAPTURE_MAX_FILES = 10_000;

/**
 * The capture volume's sizeLimit for a capture.maxBytes budget. The store keeps the bytes of its
 * files within maxBytes, but the kubelet measures an emptyDir as `du` does (whole 4 KiB blocks
 * per file, directory blocks) and evicts the whole pod past sizeLimit, so the limit carries
 * headroom: a quarter more, plus one block per file the store may keep (10,000 × 4 KiB ≈ 39 MiB),
 * rounded up to whole MiB. A limit, not a reservation: the node's disk is used only as written.
 */
export function captureVolumeSizeLimit(maxBytes: number): string {
  const bytes = maxBytes + Math.ceil(maxBytes / 4) + CAPTURE_MAX_FILES * 4096;
  return `${Math.ceil(bytes / MIB)}Mi`;
}

export const VOLUME = {
  config: 'sidewall-config',
  clusterRules: 'sidewall-cluster-rules',
  podInfo: 'sidewall-pod-info',
  tmp: 'sidewall-tmp',
  learn: 'sidewall-learn',
  captures: 'sidewall-captures',
  identityToken: 'sidewall-identity-token',
  controllerCa: 'sidewall-controller-ca',
} as const;

const RESERVED_PORTS_NOTE = 'sidewall listens on 15000 (admin), 15001 (outbound), 15006 (inbound) and 15053 (DNS)';

export interface MutationResult {
  patch: JsonPatchOp[];
  /** Shown to the user by kubectl (AdmissionResponse.warnings). */
  warnings: string[];
  /** Why nothing was injected; absent when the patch injects the sidecar. */
  skipped?: string;
  /** Set when the pod must be refused: each way it could step around the sidecar (README "Security"). */
  refused?: string[];
}

/** Where the pod is being created; the AdmissionRequest's namespace when the pod has none yet. */
export interface MutationContext {
  namespace?: string;
}

function sortedUnique<T>(items: T[]): T[] {
  return [...new Set(items)].sort((a, b) => (typeof a === 'number' && typeof b === 'number' ? a - b : String(a).localeCompare(String(b))));
}

function mergeResources(base: ResourceRequirements, override: { requests: Record<string, string>; limits: Record<string, string> }): ResourceRequirements {
  const out: ResourceRequirements = {};
  const requests = { ...(base.requests ?? {}), ...override.requests };
  const limits = { ...(base.limits ?? {}), ...override.limits };
  if (Object.keys(requests).length > 0) out.requests = requests;
  if (Object.keys(limits).length > 0) out.limits = limits;
  return out;
}

/** The redirect exclusions of a pod: the cluster-wide ones, then the pod's annotations'. */
export function podExclusions(settings: InjectorSettings, knobs: PodKnobs): { inboundPorts: number[]; outboundPorts: number[]; outboundCidrs: string[] } {
  return {
    inboundPorts: sortedUnique([...settings.excludeInboundPorts, ...knobs.excludeInboundPorts]),
    outboundPorts: sortedUnique([...settings.excludeOutboundPorts, ...knobs.excludeOutboundPorts]),
    outboundCidrs: [...new Set([...settings.excludeOutboundCidrs, ...knobs.excludeOutboundCidrs])],
  };
}

/** sidewall-proxy's command: the capability launcher (settings.proxyLauncher), then `sidewall`. */
export function proxyCommand(settings: InjectorSettings): string[] {
  return [...settings.proxyLauncher, 'sidewall'];
}

/** The `sidewall init` arguments (flags fixed with the iptables module). */
export function initArgs(settings: InjectorSettings, exclusions: { inboundPorts: number[]; outboundPorts: number[]; outboundCidrs: string[] }): string[] {
  const args = [
    'init',
    '--proxy-uid', String(settings.proxyUid),
    '--proxy-gid', String(settings.proxyGid),
    '--inbound-port', String(settings.inboundPort),
    '--outbound-port', String(settings.outboundPort),
    '--admin-port', String(settings.adminPort),
  ];
  if (exclusions.inboundPorts.length > 0) args.push('--exclude-inbound-ports', exclusions.inboundPorts.join(','));
  if (exclusions.outboundPorts.length > 0) args.push('--exclude-outbound-ports', exclusions.outboundPorts.join(','));
  if (exclusions.outboundCidrs.length > 0) args.push('--exclude-outbound-cidrs', exclusions.outboundCidrs.join(','));
  if (settings.redirectDns) args.push('--redirect-dns');
  if (settings.iptablesBackend !== 'auto') args.push('--backend', settings.iptablesBackend);
  return args;
}

function fieldEnv(name: string, fieldPath: string): EnvVar {
  return { name, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } } };
}

function adminProbe(settings: InjectorSettings, path: string, periodSeconds: number, failureThreshold: number): Container['readinessProbe'] {
  return { httpGet: { path, port: settings.adminPort, scheme: 'HTTP' }, periodSeconds, failureThreshold, timeoutSeconds: 1 };
}

function stepAroundOptions(settings: InjectorSettings): StepAroundOptions {
  return { proxyUid: settings.proxyUid, proxyGid: settings.proxyGid, specPath: 'spec', rootContainers: settings.stepAround.rootContainers === 'refuse' };
}

/** Whether the security team exempted the namespace from the step-around checks and drops. */
export function stepAroundApplies(settings: InjectorSettings, namespace: string | undefined): boolean {
  return settings.stepAround.enabled && !(namespace !== undefined && settings.stepAround.exemptNamespaces.includes(namespace));
}

export function mutatePod(pod: Pod, settings: InjectorSettings, context: MutationContext = {}): MutationResult {
  const warnings: string[] = [];
  const annotations = pod.metadata?.annotations ?? {};
  const spec = pod.spec;
  const injectValue = annotations[ANNOTATION.inject]?.trim().toLowerCase();
  if (injectValue === 'false') return { patch: [], warnings, skipped: `opted out by annotation ${ANNOTATION.inject}: "false"` };
  if (annotations[ANNOTATION.status] === STATUS_INJECTED) return { patch: [], warnings, skipped: `already injected (${ANNOTATION.status}: ${STATUS_INJECTED})` };
  if (spec === undefined || !Array.isArray(spec.containers) || spec.containers.length === 0) {
    return { patch: [], warnings, skipped: 'the pod has no containers' };
  }
  const ownNames = new Set<string>([INIT_CONTAINER, PROXY_CONTAINER]);
  const existing = [...spec.containers, ...(spec.initContainers ?? [])].find((container) => ownNames.has(container.name));
  if (existing !== undefined) {
    return { patch: [], warnings, skipped: `the pod already has a container named ${existing.name}` };
  }
  const namespace = context.namespace ?? pod.metadata?.namespace;
  const guarded = stepAroundApplies(settings, namespace);
  if (spec.hostNetwork === true) {
    // Outside an exempt namespace the step-around check below refuses it instead.
    if (guarded) return { patch: [], warnings, refused: stepAroundFindings(spec, stepAroundOptions(settings)).map(formatFinding) };
    warnings.push(
      'sidewall: not injected into this hostNetwork pod: it shares the node\'s network namespace, so its traffic cannot be redirected without changing the node\'s iptables; it is NOT protected by the firewall',
    );
    return { patch: [], warnings, skipped: 'hostNetwork pod' };
  }
  const volumeNames = new Set((spec.volumes ?? []).map((volume) => volume.name));
  for (const name of Object.values(VOLUME)) {
    if (volumeNames.has(name)) return { patch: [], warnings, skipped: `the pod already has a volume named ${name}` };
  }

  const issues: AnnotationIssue[] = [];
  const knobs = readPodKnobs(annotations, issues);
  for (const issue of issues) warnings.push(`sidewall: ignored ${formatAnnotationIssue(issue)}`);

  const reservedPorts = new Set([settings.adminPort, settings.outboundPort, settings.inboundPort, 15053]);
  for (const container of spec.containers) {
    for (const port of container.ports ?? []) {
      if (reservedPorts.has(port.containerPort)) {
        warnings.push(`sidewall: container ${container.name} declares port ${port.containerPort}, which the sidecar uses (${RESERVED_PORTS_NOTE})`);
      }
    }
  }
  if (!settings.nativeSidecar && spec.restartPolicy !== undefined && spec.restartPolicy !== 'Always') {
    warnings.push(
      `sidewall: native sidecars are off, so the sidewall-proxy container keeps running after the app exits and this pod (restartPolicy ${spec.restartPolicy}) never completes; enable nativeSidecar (Kubernetes ≥ 1.29)`,
    );
  }

  const patch: JsonPatchOp[] = [];
  if (guarded) {
    const findings = stepAroundFindings(spec, stepAroundOptions(settings));
    if (findings.length > 0) return { patch: [], warnings, refused: findings.map(formatFinding) };
    // Capability drops, like probe rewrites, address containers by their current index, so they
    // come before any op that inserts into the container lists.
    patch.push(...capabilityDropPatch(spec, { dropRoot: settings.stepAround.rootContainers === 'drop', dropNetRaw: settings.stepAround.dropNetRaw }));
  }
  // Probe rewrites address the app containers by their current index, so they come before any
  // op that inserts into the containers array.
  let appProbesJson: string | undefined;
  if (settings.rewriteProbes) {
    const rewrite = rewriteAppProbes(spec.containers, settings.adminPort, '/spec/containers');
    patch.push(...rewrite.patch);
    warnings.push(...rewrite.warnings.map((warning) => `sidewall: ${warning}`));
    if (Object.keys(rewrite.probes).length > 0) appProbesJson = JSON.stringify(rewrite.probes);
  }

  if (pod.metadata?.annotations === undefined) {
    const added: Record<string, string> = { [ANNOTATION.status]: STATUS_INJECTED };
    if (!settings.nativeSidecar) added['kubectl.kubernetes.io/default-container'] = spec.containers[0]!.name;
    if (pod.metadata === undefined) patch.push({ op: 'add', path: '/metadata', value: { annotations: added } });
    else patch.push({ op: 'add', path: '/metadata/annotations', value: added });
  } else {
    patch.push({ op: 'add', path: `/metadata/annotations${pointer(ANNOTATION.status)}`, value: STATUS_INJECTED });
    // Without native sidecars the proxy is containers[0]; keep `kubectl logs/exec` on the app.
    if (!settings.nativeSidecar && annotations['kubectl.kubernetes.io/default-container'] === undefined) {
      patch.push({ op: 'add', path: `/metadata/annotations${pointer('kubectl.kubernetes.io/default-container')}`, value: spec.containers[0]!.name });
    }
  }

  const exclusions = podExclusions(settings, knobs);
  const initContainer: Container = {
    name: INIT_CONTAINER,
    image: settings.image,
    imagePullPolicy: settings.imagePullPolicy,
    command: ['sidewall'],
    args: initArgs(settings, exclusions),
    resources: settings.initResources,
    securityContext: {
      // iptables-restore needs root in the pod's network namespace and these two capabilities;
      // nothing else.
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      privileged: false,
      allowPrivilegeEscalation: false,
      // iptables takes a lock file under /run; the container exits right after.
      readOnlyRootFilesystem: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    },
  };

  const env: EnvVar[] = [
    fieldEnv('POD_NAME', 'metadata.name'),
    fieldEnv('POD_NAMESPACE', 'metadata.namespace'),
    fieldEnv('POD_IP', 'status.podIP'),
    // Every address of a dual-stack pod (comma-separated): the admin port (probes, metrics) is
    // bound on each; with POD_IP alone the IPv6 address went unserved (found running the patch).
    fieldEnv('POD_IPS', 'status.podIPs'),
    // Cluster rules' appliesTo.serviceAccount selects pods by it; the downward API volume cannot
    // carry spec fields, an env fieldRef can.
    fieldEnv('POD_SERVICE_ACCOUNT', 'spec.serviceAccountName'),
  ];
  if (appProbesJson !== undefined) env.push({ name: APP_PROBES_ENV, value: appProbesJson });
  if (settings.proxyNodeOptions !== '') env.push({ name: 'NODE_OPTIONS', value: settings.proxyNodeOptions });

  const proxyContainer: Container = {
    name: PROXY_CONTAINER,
    image: settings.image,
    imagePullPolicy: settings.imagePullPolicy,
    command: proxyCommand(settings),
    args: ['proxy', '--config', SIDECAR_CONFIG_FILE],
    env,
    ports: [{ name: 'sidewall-admin', containerPort: settings.adminPort, protocol: 'TCP' }],
    readinessProbe: adminProbe(settings, '/ready', 2, 3),
    livenessProbe: adminProbe(settings, '/live', 10, 3),
    resources: mergeResources(settings.proxyResources, knobs.proxyResources),
    volumeMounts: [
      { name: VOLUME.config, mountPath: SIDECAR_CONFIG_DIR, readOnly: true },
      { name: VOLUME.clusterRules, mountPath: CLUSTER_RULES_DIR, readOnly: true },
      { name: VOLUME.podInfo, mountPath: POD_INFO_DIR, readOnly: true },
      { name: VOLUME.tmp, mountPath: '/tmp' },
      { name: VOLUME.learn, mountPath: LEARN_STATE_DIR },
    ],
    securityContext: {
      runAsUser: settings.proxyUid,
      runAsGroup: settings.proxyGid,
      runAsNonRoot: true,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      // CAP_NET_ADMIN in the pod's network namespace only: the NFQUEUE that decides non-TCP
      // flows and the socket mark (SO_MARK) that is the proxy's identity in iptables. As uid 1337
      // the runtime leaves it in the permitted set only; proxyLauncher makes it usable (README
      // "Security", "The proxy's capability").
      capabilities: { add: ['NET_ADMIN'], drop: ['ALL'] },
    },
  };

  const captureVolumes: Volume[] = [];
  if (settings.capture !== undefined) {
    // On the node's disk, not in memory: a capture budget of tens of MiB must not count against
    // the proxy's memory limit; the sizeLimit bounds it with headroom (captureVolumeSizeLimit).
    captureVolumes.push({ name: VOLUME.captures, emptyDir: { sizeLimit: captureVolumeSizeLimit(settings.capture.maxBytes) } });
    proxyContainer.volumeMounts!.push({ name: VOLUME.captures, mountPath: CAPTURE_DIR });
  }

  const identityVolumes: Volume[] = [];
  if (settings.identity !== undefined) {
    // Mounted into sidewall-proxy only: the app containers never see a credential for the
    // controller. The token is for the pod's own service account, bound to this pod by the
    // kubelet and good for nothing but the controller's audience.
    identityVolumes.push({
      name: VOLUME.identityToken,
      projected: {
        // Readable by uid 1337: without this the kubelet may leave the file root-owned 0600 (the
        // pod's containers run as different users), and only this container mounts it.
        defaultMode: 0o444,
        sources: [{ serviceAccountToken: { audience: settings.identity.audience, expirationSeconds: settings.identity.expirationSeconds, path: 'token' } }],
      },
    });
    proxyContainer.volumeMounts!.push({ name: VOLUME.identityToken, mountPath: IDENTITY_TOKEN_DIR, readOnly: true });
    if (settings.identity.caConfigMap !== undefined) {
      identityVolumes.push({ name: VOLUME.controllerCa, configMap: { name: settings.identity.caConfigMap, items: [{ key: 'ca.crt', path: 'ca.crt' }] } });
      proxyContainer.volumeMounts!.push({ name: VOLUME.controllerCa, mountPath: CONTROLLER_CA_DIR, readOnly: true });
    }
  }

  if (settings.nativeSidecar) {
    // An init container with restartPolicy Always is a native sidecar: it starts before the
    // remaining init containers and the app (after its startupProbe passes), and is stopped
    // when the app containers finish, so Jobs complete. It must follow sidewall-init, which
    // has to finish first so the proxy's own traffic is already excluded.
    proxyContainer.restartPolicy = 'Always';
    proxyContainer.startupProbe = adminProbe(settings, '/ready', 1, 120);
    if (spec.initContainers === undefined) {
      patch.push({ op: 'add', path: '/spec/initContainers', value: [initContainer, proxyContainer] });
    } else {
      patch.push({ op: 'add', path: '/spec/initContainers/0', value: initContainer });
      patch.push({ op: 'add', path: '/spec/initContainers/1', value: proxyContainer });
    }
  } else {
    if (spec.initContainers === undefined) patch.push({ op: 'add', path: '/spec/initContainers', value: [initContainer] });
    else patch.push({ op: 'add', path: '/spec/initContainers/0', value: initContainer });
    // First in the list: the kubelet starts containers in order, so the proxy gets a head start.
    patch.push({ op: 'add', path: '/spec/containers/0', value: proxyContainer });
  }

  const volumes: Volume[] = [
    { name: VOLUME.config, configMap: { name: settings.sidecarConfigMap } },
    { name: VOLUME.clusterRules, configMap: { name: settings.clusterRulesConfigMap } },
    {
      name: VOLUME.podInfo,
      downwardAPI: {
        items: [
          { path: 'annotations', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.annotations' } },
          { path: 'labels', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.labels' } },
          { path: 'name', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } },
          { path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } },
        ],
      },
    },
    { name: VOLUME.tmp, emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
    // On the node's disk, not in memory: the model (up to learn.maxPaths templates) outlives a
    // container restart and does not count against the proxy's memory limit.
    { name: VOLUME.learn, emptyDir: { sizeLimit: '64Mi' } },
    ...captureVolumes,
    ...identityVolumes,
  ];
  if (spec.volumes === undefined) patch.push({ op: 'add', path: '/spec/volumes', value: volumes });
  else for (const volume of volumes) patch.push({ op: 'add', path: '/spec/volumes/-', value: volume });

  return { patch, warnings };
}

/**
 * The two containers a mutation adds, read back from its patch (for `npm run demo`, which runs
 * what the patch says as local processes). Undefined when the pod was skipped.
 */
export function injectedContainers(result: MutationResult): { init: Container; proxy: Container } | undefined {
  if (result.skipped !== undefined) return undefined;
  const added: Container[] = [];
  for (const op of result.patch) {
    if (op.op !== 'add') continue;
    const values = Array.isArray(op.value) ? op.value : [op.value];
    for (const value of values) {
      if (typeof value === 'object' && value !== null && typeof (value as Container).name === 'string') added.push(value as Container);
    }
  }
  const init = added.find((container) => container.name === INIT_CONTAINER);
  const proxy = added.find((container) => container.name === PROXY_CONTAINER);
  return init !== undefined && proxy !== undefined ? { init, proxy } : undefined;
}

/**
 * A container's environment as the kubelet would resolve it: literal values, and fieldRefs
 * (metadata.name, metadata.namespace, status.podIP, ...) looked up in `fields`.
 */
export function resolveContainerEnv(container: Container, fields: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const variable of container.env ?? []) {
    const fieldPath = variable.valueFrom?.fieldRef?.fieldPath;
    if (fieldPath !== undefined) {
      const value = fields[fieldPath];
      if (value !== undefined) env[variable.name] = value;
    } else if (variable.value !== undefined) {
      env[variable.name] = variable.value;
    }
  }
  return env;
}
