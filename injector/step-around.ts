// Which containers of a pod could step around the sidecar (issue 13 item 2, PRODUCT.md
// "Injection"), read from the pod spec alone: the webhook never pulls images, so where the image
// decides (no runAsUser, setuid binaries), the spec is read as "may".
//
// The doors, and why each one is one:
// - the proxy's uid or gid (1337): sidewall init exempts the proxy's own traffic from the
//   redirect, and its admin endpoints trust the proxy's user;
// - root (or a way to it) keeping CAP_SETUID/CAP_SETGID: setuid(1337)/setgid(1337) away from the
//   first door;
// - NET_ADMIN: rewrite the pod's iptables, or set the proxy's socket mark (SO_MARK 0x539);
//   NET_RAW: raw sockets forge packets the listeners never see, and since Linux 5.17 SO_MARK
//   accepts CAP_NET_RAW as well as CAP_NET_ADMIN (net/core/sock.c); SYS_ADMIN, SYS_MODULE, BPF: the
//   kernel's own network stack is theirs; SYS_PTRACE: take over the proxy, which holds NET_ADMIN;
//   privileged / ALL: all of it.
// Capability names follow the Kubernetes API (core/v1 Capabilities: "NET_ADMIN"); containerd and
// CRI-O also accept the "CAP_" prefix and any case, so both are read here.
import type { Container, PodSpec } from './kube-types.js';
import { pointer, type JsonPatchOp } from './json-patch.js';

export const INJECTED_CONTAINER_NAMES: ReadonlySet<string> = new Set(['sidewall-init', 'sidewall-proxy']);

/** Capabilities an app container may not add, with the reason kubectl shows. */
export const FORBIDDEN_CAPABILITIES: Readonly<Record<string, string>> = {
  ALL: 'every capability, so all of the below',
  NET_ADMIN: "it can rewrite the pod's iptables or mark its sockets as the proxy's (SO_MARK), and so leave through no firewall",
  NET_RAW: "raw sockets send packets the sidecar never sees, and (Linux 5.17 and later) it can set the proxy's socket mark (SO_MARK)",
  SYS_ADMIN: "it can change the pod's network stack and mounts (and much more)",
  SYS_MODULE: 'a kernel module sees and sends everything',
  BPF: 'BPF programs can redirect or rewrite packets below the firewall',
  SYS_PTRACE: 'it can take over the sidecar process, which holds NET_ADMIN',
  SETUID: "it can switch to the proxy's uid",
  SETGID: "it can switch to the proxy's gid",
};

export type ContainerKind = 'containers' | 'initContainers' | 'ephemeralContainers';

export interface StepAroundFinding {
  /** "container app", "init container migrate", "ephemeral container debugger-x", or "the pod". */
  subject: string;
  /** The field as kubectl explain names it, from the pod spec: spec.containers[0].securityContext.runAsUser. */
  field: string;
  why: string;
  fix: string;
  /** The root-with-SETUID/SETGID door: closed by a capability drop in `drop` mode. */
  droppable?: true;
}

export interface StepAroundOptions {
  proxyUid: number;
  proxyGid: number;
  /** Prefix of field paths: "spec" for a Pod, "spec.template.spec" for a Deployment. */
  specPath: string;
  /** Report root containers keeping SETUID/SETGID as findings marked droppable. */
  rootContainers: boolean;
  /** Only these ephemeral containers (by name) are checked; absent: all. */
  ephemeralNames?: ReadonlySet<string>;
}

/** "CAP_net_admin" → "NET_ADMIN". */
export function normalizeCapability(name: string): string {
  const upper = name.trim().toUpperCase();
  return upper.startsWith('CAP_') ? upper.slice(4) : upper;
}

// The API server hands webhooks schema-valid objects; these readers still never throw on a
// malformed one, so a bad object is answered (refused by the checks) rather than crashing.
function contextOf(container: Container): NonNullable<Container['securityContext']> {
  const context = container.securityContext;
  return typeof context === 'object' && context !== null && !Array.isArray(context) ? context : {};
}

function capabilityList(container: Container, which: 'add' | 'drop'): unknown[] {
  const caps = contextOf(container).capabilities;
  const list = typeof caps === 'object' && caps !== null ? caps[which] : undefined;
  return Array.isArray(list) ? list : [];
}

function dropped(container: Container): Set<string> {
  return new Set(capabilityList(container, 'drop').filter((item): item is string => typeof item === 'string').map(normalizeCapability));
}

function drops(container: Container, capability: string): boolean {
  const set = dropped(container);
  return set.has('ALL') || set.has(capability);
}

const kindLabel: Record<ContainerKind, string> = { containers: 'container', initContainers: 'init container', ephemeralContainers: 'ephemeral container' };

// Pod Security "baseline" would refuse these, but an injected namespace must allow "privileged"
// (sidewall-init needs NET_ADMIN and NET_RAW), so the webhook refuses them in its place.
const HOST_FIELDS: Array<['hostNetwork' | 'hostPID', string, string]> = [
  ['hostNetwork', "the pod uses the node's network namespace, where the sidecar cannot police its traffic (it is not injected at all)", 'remove hostNetwork: true'],
  ['hostPID', "the pod sees the node's processes, and as root can signal or inspect them, the node's own networking among them", 'remove hostPID: true'],
];

interface PodSecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  fsGroup?: number;
  supplementalGroups?: number[];
}

function podSecurity(spec: PodSpec): PodSecurityContext {
  const context = spec.securityContext;
  return typeof context === 'object' && context !== null && !Array.isArray(context) ? (context as PodSecurityContext) : {};
}

/** The app containers of a spec (not the injected ones), with their list and index. */
export function appContainers(spec: PodSpec): Array<{ container: Container; kind: ContainerKind; index: number }> {
  const out: Array<{ container: Container; kind: ContainerKind; index: number }> = [];
  for (const kind of ['initContainers', 'containers', 'ephemeralContainers'] as const) {
    const list = spec[kind];
    if (!Array.isArray(list)) continue;
    list.forEach((container: Container, index: number) => {
      if (typeof container !== 'object' || container === null || Array.isArray(container)) return;
      if (INJECTED_CONTAINER_NAMES.has(container.name)) return;
      out.push({ container, kind, index });
    });
  }
  return out;
}

/**
 * Whether a container may run as root or become root: runAsUser 0; or no runAsUser without
 * runAsNonRoot (the image's USER decides); or privilege escalation not turned off (a setuid-root
 * binary in the image gives root with the container's whole bounding set).
 */
export function mayRunAsRoot(container: Container, spec: PodSpec): { may: boolean; because: string } {
  const context = contextOf(container);
  const pod = podSecurity(spec);
  const uid = context.runAsUser ?? pod.runAsUser;
  const nonRoot = context.runAsNonRoot ?? pod.runAsNonRoot;
  if (context.privileged === true) return { may: true, because: 'it is privileged' };
  if (uid === 0) return { may: true, because: 'it runs as uid 0' };
  if (uid === undefined && nonRoot !== true) return { may: true, because: "no runAsUser and no runAsNonRoot, so the image's USER decides and may be root" };
  if (context.allowPrivilegeEscalation !== false) return { may: true, because: 'allowPrivilegeEscalation is not false, so a setuid-root program in the image makes it root' };
  return { may: false, because: '' };
}

/** Every way the pod spec lets an app container step around the sidecar. */
export function stepAroundFindings(spec: PodSpec | undefined, options: StepAroundOptions): StepAroundFinding[] {
  if (spec === undefined || spec === null || typeof spec !== 'object') return [];
  const findings: StepAroundFinding[] = [];
  const pod = podSecurity(spec);
  const podField = `${options.specPath}.securityContext`;
  const idFix = (what: string): string => `use another ${what} (any but ${what === 'uid' ? options.proxyUid : options.proxyGid}, which only the sidecar may have)`;
  for (const [field, why, fix] of HOST_FIELDS) {
    if (spec[field] === true) findings.push({ subject: 'the pod', field: `${options.specPath}.${field}`, why, fix });
  }
  (Array.isArray(spec.volumes) ? spec.volumes : []).forEach((volume: unknown, index: number) => {
    if (typeof volume !== 'object' || volume === null || !('hostPath' in volume) || (volume as { hostPath?: unknown }).hostPath === undefined) return;
    const { name, hostPath } = volume as { name?: unknown; hostPath?: { path?: unknown } };
    findings.push({
      subject: `volume ${String(name)}`,
      field: `${options.specPath}.volumes[${index}].hostPath`,
      why: `it mounts the node's ${String(hostPath?.path ?? 'files')}: a root process can change the node itself (its iptables, the kubelet, other pods), below the firewall`,
      fix: 'use an emptyDir, configMap, secret or persistentVolumeClaim volume instead',
    });
  });
  if (pod.runAsUser === options.proxyUid) {
    findings.push({ subject: 'the pod', field: `${podField}.runAsUser`, why: `every container without its own runAsUser runs as uid ${options.proxyUid}, the sidecar's own user`, fix: idFix('uid') });
  }
  if (pod.runAsGroup === options.proxyGid) {
    findings.push({ subject: 'the pod', field: `${podField}.runAsGroup`, why: `every container without its own runAsGroup runs with gid ${options.proxyGid}, the sidecar's own group`, fix: idFix('gid') });
  }
  if (pod.fsGroup === options.proxyGid) {
    findings.push({ subject: 'the pod', field: `${podField}.fsGroup`, why: `every container gets gid ${options.proxyGid}, the sidecar's own group, as a supplementary group`, fix: idFix('gid') });
  }
  if (Array.isArray(pod.supplementalGroups) && pod.supplementalGroups.includes(options.proxyGid)) {
    findings.push({ subject: 'the pod', field: `${podField}.supplementalGroups`, why: `every container gets gid ${options.proxyGid}, the sidecar's own group`, fix: `remove ${options.proxyGid} from the list` });
  }

  for (const { container, kind, index } of appContainers(spec)) {
    if (kind === 'ephemeralContainers' && options.ephemeralNames !== undefined && !options.ephemeralNames.has(container.name)) continue;
    const subject = `${kindLabel[kind]} ${container.name}`;
    const field = `${options.specPath}.${kind}[${index}].securityContext`;
    const context = contextOf(container);
    if (context.runAsUser === options.proxyUid) {
      findings.push({ subject, field: `${field}.runAsUser`, why: `uid ${options.proxyUid} is the sidecar's own user`, fix: idFix('uid') });
    }
    if (context.runAsGroup === options.proxyGid) {
      findings.push({ subject, field: `${field}.runAsGroup`, why: `gid ${options.proxyGid} is the sidecar's own group`, fix: idFix('gid') });
    }
    if (context.privileged === true) {
      findings.push({ subject, field: `${field}.privileged`, why: 'a privileged container holds every capability, NET_ADMIN among them, and can undo the firewall', fix: 'remove privileged: true and add only the capabilities it needs' });
    }
    const added = capabilityList(container, 'add').map((item) => (typeof item === 'string' ? item : ''));
    added.forEach((raw, addIndex) => {
      if (raw === '') return;
      const capability = normalizeCapability(raw);
      const reason = FORBIDDEN_CAPABILITIES[capability];
      if (reason === undefined) return;
      findings.push({ subject, field: `${field}.capabilities.add[${addIndex}]`, why: `${raw}: ${reason}`, fix: `remove ${raw} from capabilities.add` });
    });
    if (options.rootContainers && context.privileged !== true) {
      const root = mayRunAsRoot(container, spec);
      const keeps = ['SETUID', 'SETGID'].filter((capability) => !drops(container, capability));
      if (root.may && keeps.length > 0) {
        findings.push({
          subject,
          field: `${field}.capabilities.drop`,
          why: `${root.because}, and it keeps ${keeps.map((c) => 'CAP_' + c).join(' and ')} (in the runtime's default set), so it could call ${keeps.map((c) => (c === 'SETUID' ? `setuid(${options.proxyUid})` : `setgid(${options.proxyGid})`)).join(' or ')} and pass as the sidecar`,
          fix: 'add capabilities.drop: [SETUID, SETGID] (or ALL), or run it as a non-root user with runAsNonRoot: true and allowPrivilegeEscalation: false',
          droppable: true,
        });
      }
    }
  }
  return findings;
}

export function formatFinding(finding: StepAroundFinding): string {
  return `${finding.subject}: ${finding.field}: ${finding.why}; fix: ${finding.fix}`;
}

/**
 * JSON Patch ops that add `capabilities.drop` entries to one container at `base` (a JSON Pointer
 * to the container), creating securityContext/capabilities/drop as needed.
 */
export function dropCapabilitiesPatch(container: Container, base: string, capabilities: string[]): JsonPatchOp[] {
  const missing = capabilities.filter((capability) => !drops(container, capability));
  if (missing.length === 0) return [];
  const context = container.securityContext;
  if (context === undefined || context === null) return [{ op: 'add', path: `${base}/securityContext`, value: { capabilities: { drop: missing } } }];
  const caps = context.capabilities;
  if (caps === undefined || caps === null) return [{ op: 'add', path: `${base}/securityContext/capabilities`, value: { drop: missing } }];
  if (!Array.isArray(caps.drop)) return [{ op: 'add', path: `${base}/securityContext/capabilities/drop`, value: missing }];
  return missing.map((capability) => ({ op: 'add', path: `${base}/securityContext/capabilities/drop/-`, value: capability }));
}

/**
 * The drops the mutating webhook adds to a pod's app and init containers: SETUID and SETGID for
 * those that may run as root (rootContainers: drop), NET_RAW for all (dropNetRaw). Ops come
 * before any insertion into the container lists, so indices are the pod's own.
 */
export function capabilityDropPatch(spec: PodSpec, options: { dropRoot: boolean; dropNetRaw: boolean }): JsonPatchOp[] {
  const patch: JsonPatchOp[] = [];
  // The API server refuses Linux capabilities in a pod for Windows nodes.
  if ((spec.os as { name?: unknown } | undefined)?.name === 'windows') return patch;
  for (const { container, kind, index } of appContainers(spec)) {
    if (kind === 'ephemeralContainers') continue;
    // A privileged container has every capability whatever it drops; it is refused instead.
    if (contextOf(container).privileged === true) continue;
    const wanted: string[] = [];
    if (options.dropRoot && mayRunAsRoot(container, spec).may) wanted.push('SETUID', 'SETGID');
    if (options.dropNetRaw) wanted.push('NET_RAW');
    patch.push(...dropCapabilitiesPatch(container, pointer('spec', kind, index), wanted));
  }
  return patch;
}
