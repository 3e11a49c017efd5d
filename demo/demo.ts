// `npm run demo`: the whole product on one machine. Network namespaces stand in for a pod and a
// peer; the demo pod (demo/pod.yaml) goes through the injector's real mutation, and the init
// container's and sidecar's commands, users and environment are run exactly as the patch says.
// Real clients then send allowed, denied and tunnelled traffic and the flow records are shown.
// sidewall-init and sidewall-proxy come from the image under podman/runc when it was built from
// this tree (test/harness/sidecar-runtime.ts; SIDEWALL_E2E_RUNTIME=image|tree), else from the tree.
// Every way out (the time is up, Ctrl-C once or twice, SIGTERM, SIGHUP, a closed pipe on stdout,
// an error) runs the one teardown to its end: the container, the namespaces and their rules go.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import fastJsonPatch from 'fast-json-patch';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { CLUSTER_RULES_DIR, defaultInjectorSettings, INIT_CONTAINER, LEARN_STATE_DIR, mutatePod, POD_INFO_DIR, PROXY_CONTAINER, resolveContainerEnv, SIDECAR_CONFIG_FILE, type Container, type Pod } from '../injector/index.js';
import type { Volume } from '../injector/kube-types.js';
import { APP_UID, CLI, NODE, PROXY_UID, REPO, Topology, waitForLine } from '../test/harness/netns.js';
import { podmanRunArgs, sidecarRuntime } from '../test/harness/sidecar-runtime.js';
import { flowTableHeader, flowTableRow, terminalTableOptions } from '../src/flows/flow-table.js';
import type { FlowRecord } from '../src/flows/index.js';

const { values: flags } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    learn: { type: 'boolean', default: false },
    duration: { type: 'string', default: '30' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (flags.help) {
  process.stdout.write(
    'usage: npm run demo [-- --json] [-- --duration SECONDS (0: until Ctrl-C)] [-- --learn]\n' +
      '  --learn  start the pod in learn mode, generate its rules from the traffic seen\n' +
      '           (sidewall policy learn), switch it to protect without a restart, and show\n' +
      '           new behaviour denied with the rule that would allow it\n',
  );
  process.exit(0);
}

const DEMO_DIR = join(REPO, 'demo');
const topo = new Topology({ name: 'demo', subnet: 50 });
/** The cluster IP of the catalog Service. */
const CATALOG_VIP = '10.96.50.80';

/**
 * What kube-proxy does on the node: the pod routes the Service's cluster IP out, and the peer's
 * namespace (standing for the node and the pod behind it) DNATs it to the pod's IP on arrival.
 */
function serviceNode(): void {
  topo.exec(topo.podNs, 'ip', ['route', 'add', `${CATALOG_VIP}/32`, 'via', topo.peerIp]);
  topo.exec(topo.peerNs, 'iptables', ['-t', 'nat', '-A', 'PREROUTING', '-d', CATALOG_VIP, '-p', 'tcp', '--dport', '80', '-j', 'DNAT', '--to-destination', `${topo.peerIp}:80`]);
}
const PROXY_NAME = `${topo.podNs}-proxy`;
const runtime = sidecarRuntime();
// Colour and width: the table on stdout (or, through `| tee`, the terminal on stderr).
const table = terminalTableOptions(process.stdout, process.stderr);
const bold = process.stderr.isTTY === true && (process.env.NO_COLOR ?? '') === '';

// A reader that went away (`npm run demo | head`, tee killed by Ctrl-C) makes writes fail with
// EPIPE: stop writing there and tear down, instead of dying with the namespaces still up.
let stdoutOpen = true;
let stderrOpen = true;
process.stdout.on('error', () => {
  stdoutOpen = false;
  shutdown(0, 'stdout closed');
});
process.stderr.on('error', () => {
  stderrOpen = false;
});
const out = (line: string): void => {
  if (stdoutOpen) process.stdout.write(line + '\n');
};
const err = (text: string): void => {
  if (stderrOpen) process.stderr.write(text);
};
const say = (text: string): void => err(bold ? `\x1b[1m${text}\x1b[0m\n` : `${text}\n`);

/**
 * The one way out. Idempotent: a second Ctrl-C, a SIGTERM, the sidecar exiting or stdout closing
 * while it runs only say so; the process exits when the teardown has finished (that it did not was
 * the bug: the second call exited at once, mid-teardown, leaving namespaces and nat rules behind).
 */
let teardown: Promise<void> | undefined;
function shutdown(code: number, why: string): void {
  if (teardown !== undefined) {
    say(`demo: ${why}; still tearing down`);
    return;
  }
  say(`demo: ${why}; tearing down the sidecar, the namespaces and their rules`);
  teardown = (async () => {
    try {
      // The container first (its proxy keeps the pod namespace busy), then every process and namespace.
      if (runtime.kind === 'image') await removeContainer();
      await topo.destroy();
    } catch (e) {
      err(`demo: teardown: ${e instanceof Error ? e.message : String(e)}\n`);
      code = 1;
    }
  })().finally(() => process.exit(code));
}
/**
 * The proxy's container gone for good: `podman run --rm`'s own removal may be running at the same
 * time (Ctrl-C reaches podman too), so remove, then wait until podman no longer knows the name.
 */
async function removeContainer(): Promise<void> {
  for (let i = 0; i < 100; i++) {
    spawnSync('podman', ['rm', '--force', '--time', '2', PROXY_NAME], { stdio: 'ignore' });
    if (spawnSync('podman', ['container', 'exists', PROXY_NAME]).status === 1) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`podman still has the container ${PROXY_NAME}`);
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => shutdown(0, signal));
process.on('uncaughtException', (e) => {
  err(`demo: ${e.stack ?? e.message}\n`);
  shutdown(1, 'error');
});
process.on('unhandledRejection', (e) => {
  err(`demo: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  shutdown(1, 'error');
});

/** Writes the downward API folder the way the kubelet does: `key="value"` lines, Go-quoted. */
function downwardApiMap(map: Record<string, string> | undefined): string {
  return Object.entries(map ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join('\n');
}

function injectDemoPod(): { pod: Pod; init: Container; proxy: Container; warnings: string[] } {
  const pod = parseYaml(readFileSync(join(DEMO_DIR, 'pod.yaml'), 'utf8')) as Pod;
  const settings = defaultInjectorSettings();
  const result = mutatePod(pod, settings);
  if (result.skipped !== undefined) throw new Error(`the injector skipped the demo pod: ${result.skipped}`);
  if (result.refused !== undefined) throw new Error(`the injector refused the demo pod:\n  ${result.refused.join('\n  ')}`);
  const patched = fastJsonPatch.applyPatch(structuredClone(pod), result.patch as fastJsonPatch.Operation[]).newDocument as Pod;
  const all = [...(patched.spec?.initContainers ?? []), ...(patched.spec?.containers ?? [])];
  const init = all.find((c) => c.name === INIT_CONTAINER);
  const proxy = all.find((c) => c.name === PROXY_CONTAINER);
  if (!init || !proxy) throw new Error('the patch did not add sidewall-init and sidewall-proxy');
  return { pod: patched, init, proxy, warnings: result.warnings };
}

/** Replaces the container's mount paths by the demo's folders (no kubelet here to mount them). */
function localPath(path: string, mounts: Record<string, string>): string {
  for (const [from, to] of Object.entries(mounts)) if (path.startsWith(from)) return to + path.slice(from.length);
  return path;
}

async function main(): Promise<void> {
  say('demo: injecting demo/pod.yaml with the admission webhook\'s mutation');
  const { pod, init, proxy, warnings } = injectDemoPod();
  for (const w of warnings) say(`  warning: ${w}`);
  say(`demo: sidewall-init and sidewall-proxy ${runtime.kind === 'image' ? `from ${runtime.image} under podman/runc, as the patch says (user, read-only root, capabilities, volumes)` : `from the working tree (${runtime.why})`}`);
  const native = pod.spec?.initContainers?.some((c) => c.name === PROXY_CONTAINER && c.restartPolicy === 'Always');
  say(`  + ${INIT_CONTAINER}: sidewall ${(init.args ?? []).join(' ')}`);
  say(`  + ${PROXY_CONTAINER}${native ? ' (native sidecar)' : ''} as uid ${proxy.securityContext?.runAsUser}: sidewall ${(proxy.args ?? []).join(' ')}`);

  topo.create();
  serviceNode();
  // The volumes the patch mounts, as local folders (the learn emptyDir writable by the proxy).
  const configDir = join(topo.dir, 'config');
  const clusterDir = join(topo.dir, 'cluster');
  const podInfoDir = join(topo.dir, 'pod');
  const learnDir = join(topo.dir, 'learn');
  for (const d of [configDir, clusterDir, podInfoDir, learnDir]) mkdirSync(d, { recursive: true, mode: 0o755 });
  chmodSync(learnDir, 0o777);
  const mounts: Record<string, string> = { [SIDECAR_CONFIG_FILE.replace(/\/[^/]+$/, '')]: configDir, [CLUSTER_RULES_DIR]: clusterDir, [POD_INFO_DIR]: podInfoDir, [LEARN_STATE_DIR]: learnDir };
  // In the container the patch's mount paths are real; from the tree they are these folders.
  const at = (path: string): string => (runtime.kind === 'image' ? path : localPath(path, mounts));
  const sidecarConfig = parseYaml(readFileSync(join(DEMO_DIR, 'sidecar-config.yaml'), 'utf8')) as Record<string, unknown>;
  sidecarConfig.clusterRules = at(`${CLUSTER_RULES_DIR}/rules.yaml`);
  // Who the peer is: rules name workloads (namespace, labels), not IPs. In a cluster the identity
  // controller streams this map; here it is the config's static list.
  sidecarConfig.identities = [{ ip: topo.peerIp, namespace: 'catalog', pod: 'catalog-0', labels: { app: 'catalog' }, serviceAccount: 'catalog' }];
  // The peer's Service (issue 20): the app calls its cluster IP, which the "node" turns into the
  // pod IP after the packet left the pod (see serviceNode). The label rule catalog-egress matches
  // it because every ready endpoint of the Service is a catalog pod; records name the Service.
  sidecarConfig.services = [{ namespace: 'catalog', name: 'catalog', clusterIPs: [CATALOG_VIP], ports: [80], selector: { app: 'catalog' } }];
  sidecarConfig.podInfo = at(POD_INFO_DIR);
  // Learn mode's model on the pod's own volume (the config's default path is the patch's mount).
  if (runtime.kind === 'tree') sidecarConfig.learn = { stateFile: join(learnDir, 'model.json') };
  topo.writeFile('config/config.yaml', stringifyYaml(sidecarConfig));
  topo.writeFile('cluster/rules.yaml', readFileSync(join(DEMO_DIR, 'cluster-rules.yaml'), 'utf8'));
  const podName = `${pod.metadata?.generateName ?? 'shop-'}x1`;
  const annotations = { ...pod.metadata?.annotations };
  if (flags.learn) {
    // Learn first: no workload rules, mode learn; the rules come from what the pod does.
    delete annotations['sidewall.io/rules'];
    annotations['sidewall.io/mode'] = 'learn';
  }
  topo.writeFile('pod/annotations', downwardApiMap(annotations));
  topo.writeFile('pod/labels', downwardApiMap(pod.metadata?.labels));
  topo.writeFile('pod/name', podName);
  topo.writeFile('pod/namespace', pod.metadata?.namespace ?? 'default');

  say(`demo: pod namespace ${topo.podNs} (${topo.podIp}), peer namespace ${topo.peerNs} (${topo.peerIp})`);
  const volumes = pod.spec?.volumes ?? [];
  const hostDir = (volume: string): string => {
    const mount = [...(init.volumeMounts ?? []), ...(proxy.volumeMounts ?? [])].find((m) => m.name === volume);
    const dir = mount === undefined ? undefined : mounts[mount.mountPath];
    if (dir === undefined) throw new Error(`the demo has no folder for volume ${volume}`);
    return dir;
  };
  const initRun = runtime.kind === 'image' ? runImage(init, volumes, hostDir) : topo.exec(topo.podNs, NODE, [CLI, ...(init.args ?? [])]);
  if (initRun.status !== 0) throw new Error(`sidewall-init failed: ${initRun.stderr}`);
  say(`demo: ${initRun.stderr.trim()}`);

  const env = resolveContainerEnv(proxy, { 'metadata.name': podName, 'metadata.namespace': pod.metadata?.namespace ?? 'default', 'status.podIP': topo.podIp, 'status.podIPs': `${topo.podIp},${topo.podIp6}`, 'spec.serviceAccountName': 'default' });
  let sidecar: ChildProcess;
  if (runtime.kind === 'image') {
    spawnSync('podman', ['rm', '--force', '--time', '0', PROXY_NAME], { stdio: 'ignore' });
    sidecar = spawn('podman', podmanRunArgs(proxy, volumes, { image: runtime.image, netns: topo.podNs, name: PROXY_NAME, hostDir, env }), { stdio: ['ignore', 'pipe', 'pipe'] });
  } else {
    const args = (proxy.args ?? []).map((a) => localPath(a, mounts));
    sidecar = topo.start(topo.podNs, NODE, [CLI, ...args], { uid: proxy.securityContext?.runAsUser ?? 1337, env });
  }
  sidecar.stderr?.on('data', (d: Buffer) => {
    if (flags.json) err(d.toString());
  });
  sidecar.on('exit', (code) => shutdown(1, `the sidecar exited (${code})`));
  await waitForReady();

  say('demo: starting the apps (web on :8080, a worker calling it over localhost) and the peer');
  const apps = join(DEMO_DIR, 'apps');
  await waitForLine(topo.start(topo.peerNs, NODE, [join(apps, 'peer.mjs')]), (l) => l === 'listening', 10_000, 'peer');
  await waitForLine(topo.start(topo.podNs, NODE, [join(apps, 'web.mjs')], { uid: APP_UID }), (l) => l === 'listening', 10_000, 'web');
  const callers: ChildProcess[] = [
    topo.start(topo.podNs, NODE, [join(apps, 'caller.mjs'), '1500', 'http://127.0.0.1:8080/api/orders', `http://${topo.peerIp}/catalog`, `http://${CATALOG_VIP}/catalog/items/7`, `http://${CATALOG_VIP}/admin/users`, `http://${topo.peerIp}/admin/users`, `tcp://${topo.peerIp}:2525`, `ssh://${topo.peerIp}:80`], { uid: APP_UID + 1 }),
    topo.start(topo.peerNs, NODE, [join(apps, 'caller.mjs'), '2000', `http://${topo.podIp}:8080/api/orders`, `http://${topo.podIp}:8080/internal/debug`]),
  ];
  for (const c of callers) {
    createInterface({ input: c.stdout! }).on('line', (line) => {
      if (!flags.json) err(bold ? `\x1b[2m  app: ${line}\x1b[0m\n` : `  app: ${line}\n`);
    });
  }

  if (!flags.json) out(flowTableHeader(table));
  createInterface({ input: sidecar.stdout! }).on('line', (line) => {
    let record: FlowRecord;
    try {
      record = JSON.parse(line) as FlowRecord;
    } catch {
      // --json: stdout carries JSON lines only; anything else the sidecar printed goes to stderr.
      err(`${line}\n`);
      return;
    }
    out(flags.json ? line : flowTableRow(record, table));
  });

  if (flags.learn) await learnThenProtect(annotations, apps);
  const seconds = Number(flags.duration);
  if (seconds > 0) {
    await new Promise((r) => setTimeout(r, seconds * 1000));
    shutdown(0, `${seconds} s are up (run with -- --duration 0 to go on until Ctrl-C)`);
  }
}

/** --learn: let the traffic teach the model, generate the rules, lock the pod with them. */
async function learnThenProtect(annotations: Record<string, string>, apps: string): Promise<void> {
  const learnSeconds = 8;
  say(`demo: learn mode: watching the pod's traffic for ${learnSeconds} s`);
  await new Promise((r) => setTimeout(r, learnSeconds * 1000));
  // As the sidecar's own user (kubectl exec into sidewall-proxy): the learned model is not for apps.
  const learned = await topo.execAsync(topo.podNs, NODE, [CLI, 'policy', 'learn', '--from', 'http://127.0.0.1:15000', '-o', 'yaml'], { uid: PROXY_UID });
  if (learned.status !== 0) throw new Error(`sidewall policy learn failed: ${learned.stderr}`);
  say('demo: sidewall policy learn --from http://127.0.0.1:15000 generated:');
  err(learned.stdout.replace(/^/gm, '    ') + '\n');
  say('demo: writing them as the sidewall.io/rules annotation with sidewall.io/mode: protect (no restart)');
  topo.writeFile('pod/annotations', downwardApiMap({ ...annotations, 'sidewall.io/mode': 'protect', 'sidewall.io/rules': learned.stdout }));
  await new Promise((r) => setTimeout(r, 1000));
  say('demo: the same traffic keeps flowing; new behaviour (a new path shape, a new port) is denied with the rule that would allow it');
  topo.start(topo.podNs, NODE, [join(apps, 'caller.mjs'), '2000', 'http://127.0.0.1:8080/api/refunds/42/approve', `http://${topo.peerIp}/catalog/items/9`, `tcp://${topo.peerIp}:2526`], { uid: APP_UID + 2 });
}

async function waitForReady(): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await topo.execAsync(topo.podNs, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:15000/ready']);
    if (r.stdout === '200') {
      say('demo: sidewall-proxy is ready (GET :15000/ready → 200)');
      return;
    }
    await new Promise((r2) => setTimeout(r2, 100));
  }
  throw new Error('sidewall-proxy did not become ready');
}

/** A container of the patched pod from the image, to completion (sidewall-init). */
function runImage(container: Container, volumes: Volume[], hostDir: (volume: string) => string): { status: number | null; stderr: string } {
  const r = spawnSync('podman', podmanRunArgs(container, volumes, { image: runtime.image, netns: topo.podNs, hostDir }), { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stderr: r.stderr ?? '' };
}

main().catch((e: unknown) => {
  err(`demo: ${e instanceof Error ? e.message : String(e)}\n`);
  shutdown(1, 'error');
});
