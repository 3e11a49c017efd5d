// Where the e2e harness and `npm run demo` take sidewall-init and sidewall-proxy from:
//   image — the OCI image `npm run image` built (localhost/sidewall:<version>), run by podman with
//           runc inside the pod's network namespace, with the command, user, read-only root,
//           capabilities, mounts and environment of the webhook's own patch (mutatePod on a pod,
//           then the patch applied): a securityContext the image cannot run under fails the tests.
//   tree  — the working tree's bin/sidewall.js under `ip netns exec` + setpriv (fast, for unit work).
// SIDEWALL_E2E_RUNTIME=image|tree chooses; unset (or `auto`), the image is used only when its
// io.sidewall.tree-hash label equals this tree's (scripts/tree-hash.mjs), else the tree, and the
// reason is printed: a stale image is never run silently, and `image` refuses one outright.
// CI (.ci/run) and `npm test` run the image path.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import fastJsonPatch from 'fast-json-patch';
import { defaultInjectorSettings, INIT_CONTAINER, mutatePod, PROXY_CONTAINER, type Container, type Pod } from '../../injector/index.js';
import type { Volume } from '../../injector/kube-types.js';
import { REPO } from './netns.js';

export type RuntimeKind = 'tree' | 'image';

export interface SidecarRuntime {
  kind: RuntimeKind;
  /** The image run when kind is 'image': the patch's, or its tree-<hash> tag (same content). */
  image: string;
  /** Why this runtime: printed once per process. */
  why: string;
}

/**
 * Flags every `podman run` here needs: runc (crun is not in Debian's podman dependencies on every
 * machine), and ulimits within this machine's hard limits (podman's defaults exceed them); the
 * file limit is what a kubelet on containerd gives (the proxy's budgets derive from it).
 */
export const PODMAN_RUN = ['run', '--runtime', 'runc', '--pull', 'never', '--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=4096:4096'];

export const TREE_HASH_LABEL = 'io.sidewall.tree-hash';

/** The hash scripts/tree-hash.mjs computes for this tree (what `npm run image` labels the image with). */
export function treeHash(): string {
  const r = spawnSync(process.execPath, [join(REPO, 'scripts', 'tree-hash.mjs')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`scripts/tree-hash.mjs failed: ${r.stderr}`);
  return r.stdout.trim();
}

/**
 * The image to run for this tree: `image` (the patch's) or the same repository's `tree-<hash>`
 * tag that `npm run image` adds (worktrees sharing one podman store each find their own build),
 * whichever carries this tree's hash; else why neither can run.
 */
export function imageForTree(image: string): { image: string } | { problem: string } {
  if (process.getuid?.() !== 0) return { problem: 'not root' };
  if (spawnSync('podman', ['--version']).status !== 0) return { problem: 'podman is not installed (bash scripts/install-debian-deps.sh image)' };
  const tree = treeHash();
  const label = (candidate: string): string | undefined => {
    const inspect = spawnSync('podman', ['image', 'inspect', '--format', `{{index .Labels "${TREE_HASH_LABEL}"}}`, candidate], { encoding: 'utf8' });
    return inspect.status === 0 ? inspect.stdout.trim() : undefined;
  };
  const treeTag = `${image.replace(/:[^:/]+$/, '')}:tree-${tree}`;
  if (label(treeTag) === tree) return { image: treeTag };
  const found = label(image);
  if (found === undefined) return { problem: `${image} is not in the podman store (npm run build && npm run image -- --no-dockerfile)` };
  if (found !== tree) return { problem: `${image} was built from another tree (${TREE_HASH_LABEL} ${found === '' || found === '<no value>' ? 'missing' : found}, this tree ${tree}; npm run build && npm run image -- --no-dockerfile)` };
  return { image };
}

let chosen: SidecarRuntime | undefined;

export function sidecarRuntime(): SidecarRuntime {
  if (chosen !== undefined) return chosen;
  const image = defaultInjectorSettings().image;
  const wanted = process.env.SIDEWALL_E2E_RUNTIME ?? 'auto';
  if (wanted === 'tree') {
    chosen = { kind: 'tree', image, why: 'SIDEWALL_E2E_RUNTIME=tree' };
  } else if (wanted === 'image' || wanted === 'auto') {
    const found = imageForTree(image);
    if ('problem' in found && wanted === 'image') throw new Error(`SIDEWALL_E2E_RUNTIME=image: cannot run the sidecar from the image: ${found.problem}`);
    chosen = 'image' in found ? { kind: 'image', image: found.image, why: `${found.image} under podman/runc, built from this tree` } : { kind: 'tree', image, why: `from the working tree: ${found.problem}` };
  } else {
    throw new Error(`SIDEWALL_E2E_RUNTIME must be image, tree or auto, not '${wanted}'`);
  }
  process.stderr.write(`sidewall: sidecar ${chosen.kind === 'image' ? `from ${chosen.why}` : chosen.why}\n`);
  return chosen;
}

export interface InjectedSidecar {
  pod: Pod;
  init: Container;
  proxy: Container;
  /** The pod's volumes after the patch (the sidecar's own among them). */
  volumes: Volume[];
}

/**
 * A pod put through the webhook's mutation with the default injector settings and the patch
 * applied: its sidewall-init and sidewall-proxy containers are what the tests run.
 */
export function injectedSidecar(pod?: Pod): InjectedSidecar {
  const original: Pod = pod ?? {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'app-0', namespace: 'test', labels: { app: 'app' } },
    spec: { containers: [{ name: 'app', image: 'example/app:1.0' }] },
  };
  const result = mutatePod(original, defaultInjectorSettings());
  if (result.skipped !== undefined) throw new Error(`the injector skipped the pod: ${result.skipped}`);
  if (result.refused !== undefined) throw new Error(`the injector refused the pod:\n  ${result.refused.join('\n  ')}`);
  const patched = fastJsonPatch.applyPatch(structuredClone(original), result.patch as fastJsonPatch.Operation[]).newDocument as Pod;
  const all = [...(patched.spec?.initContainers ?? []), ...(patched.spec?.containers ?? [])];
  const init = all.find((c) => c.name === INIT_CONTAINER);
  const proxy = all.find((c) => c.name === PROXY_CONTAINER);
  if (init === undefined || proxy === undefined) throw new Error('the patch did not add sidewall-init and sidewall-proxy');
  return { pod: patched, init, proxy, volumes: patched.spec?.volumes ?? [] };
}

/** podman flags for a container's securityContext, as a kubelet with runc applies it. */
export function securityFlags(container: Container): string[] {
  const sc = container.securityContext;
  if (sc === undefined) throw new Error(`${container.name} has no securityContext`);
  if (sc.privileged === true) throw new Error(`${container.name} is privileged: the patch must never ask for that`);
  const flags = ['--user', `${sc.runAsUser ?? 0}:${sc.runAsGroup ?? 0}`];
  // --read-only-tmpfs=false: podman otherwise mounts tmpfs on /tmp, /run and /var/tmp, which a
  // kubelet does not; the patch's own volumes are all the container may write.
  if (sc.readOnlyRootFilesystem === true) flags.push('--read-only', '--read-only-tmpfs=false');
  if (sc.allowPrivilegeEscalation === false) flags.push('--security-opt', 'no-new-privileges');
  for (const cap of sc.capabilities?.drop ?? []) flags.push('--cap-drop', cap);
  for (const cap of sc.capabilities?.add ?? []) flags.push('--cap-add', cap);
  return flags;
}

/** The container's command as podman's --entrypoint (JSON form: no shell). */
export function entrypointFlags(container: Container): string[] {
  if (container.command === undefined || container.command.length === 0) throw new Error(`${container.name} has no command`);
  return ['--entrypoint', JSON.stringify(container.command)];
}

/** Kubernetes quantities as podman sizes ("16Mi" → "16m"); undefined when there is no limit. */
function podmanSize(quantity: string | undefined): string | undefined {
  if (quantity === undefined) return undefined;
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(quantity);
  if (m === null) throw new Error(`unsupported quantity ${quantity}`);
  return `${m[1]}${({ Ki: 'k', Mi: 'm', Gi: 'g' } as Record<string, string>)[m[2] ?? ''] ?? ''}`;
}

/**
 * The container's volume mounts as podman flags: an emptyDir as a tmpfs (memory) or a fresh
 * writable folder, every other volume (ConfigMap, downward API, projected token) from the host
 * folder `hostDir(volumeName)` gives, read-only when the mount says so (the kubelet mounts those
 * kinds read-only anyway).
 */
export function mountFlags(container: Container, volumes: Volume[], hostDir: (volume: string) => string): string[] {
  const flags: string[] = [];
  for (const mount of container.volumeMounts ?? []) {
    const volume = volumes.find((v) => v.name === mount.name);
    if (volume === undefined) throw new Error(`${container.name} mounts ${mount.name}, which the pod does not have`);
    const emptyDir = (volume as { emptyDir?: { medium?: string; sizeLimit?: string } }).emptyDir;
    if (emptyDir !== undefined && emptyDir.medium === 'Memory') {
      const size = podmanSize(emptyDir.sizeLimit);
      flags.push('--tmpfs', `${mount.mountPath}:rw,mode=1777${size === undefined ? '' : `,size=${size}`}`);
      continue;
    }
    const ro = emptyDir === undefined || mount.readOnly === true;
    flags.push('--volume', `${hostDir(mount.name)}:${mount.mountPath}${ro ? ':ro' : ''}`);
  }
  return flags;
}

/** A container's memory limit in bytes (resources.limits.memory), as the kubelet sets the cgroup's. */
export function memoryLimitBytes(container: Container): number | undefined {
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(container.resources?.limits?.memory ?? '');
  if (m === null) return undefined;
  const unit: Record<string, number> = { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 };
  return Number(m[1]) * (unit[m[2] ?? ''] ?? 1);
}

export interface PodmanRunOptions {
  image: string;
  /** The pod's network namespace (a name under /run/netns). */
  netns: string;
  name?: string;
  /** The host folder standing for a (non-emptyDir-in-memory) volume. */
  hostDir: (volume: string) => string;
  /** The environment, downward-API fields already resolved (resolveContainerEnv). */
  env?: Record<string, string | undefined>;
  /** Overrides the container's memory limit (bytes). */
  memoryBytes?: number;
  /** More podman flags (test-only mounts). */
  extra?: string[];
  /** In place of the container's args. */
  args?: string[];
}

/**
 * `podman run --rm` arguments that run `container` of the patched pod the way a kubelet with runc
 * would: its command, args, user, securityContext, volume mounts, environment and memory limit.
 */
export function podmanRunArgs(container: Container, volumes: Volume[], options: PodmanRunOptions): string[] {
  const memory = options.memoryBytes ?? memoryLimitBytes(container);
  return [
    ...PODMAN_RUN,
    '--rm',
    ...(options.name !== undefined ? ['--name', options.name] : []),
    '--network',
    `ns:/run/netns/${options.netns}`,
    ...securityFlags(container),
    ...mountFlags(container, volumes, options.hostDir),
    ...(memory !== undefined ? ['--memory', String(memory), '--memory-swap', String(memory)] : []),
    ...(options.extra ?? []),
    ...Object.entries(options.env ?? {}).flatMap(([k, v]) => ['--env', `${k}=${v ?? ''}`]),
    ...entrypointFlags(container),
    options.image,
    ...(options.args ?? container.args ?? []),
  ];
}
