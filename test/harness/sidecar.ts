// The sidecar inside a Topology's pod namespace, started the way the injected pod starts it:
// `sidewall init` as root (the init container), then `sidewall proxy` as uid 1337. Where they come
// from (the image under podman/runc with the webhook patch's securityContext, or the working
// tree) is test/harness/sidecar-runtime.ts's choice; the API is the same for both.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { CLI, NODE, PROXY_UID, type ExecResult, type Topology } from './netns.js';
import { injectedSidecar, podmanRunArgs, sidecarRuntime, type SidecarRuntime } from './sidecar-runtime.js';
import { resolveContainerEnv } from '../../injector/index.js';

/** Protocols of the non-TCP guard's records (schema/flow-record.schema.json: udp, icmp, ip-N): not accepted connections. */
const NON_TCP = /^(udp|icmp|ip-\d+)$/;

export interface FlowRecordLine {
  type: string;
  seq: number;
  time: string;
  flowId: string;
  direction: string;
  src: { ip: string; port: number };
  dst: { ip: string; port: number };
  protocol: string;
  verdict: string;
  ruleId: string | null;
  reason?: string;
  bytes?: { sent: number; received: number };
  [key: string]: unknown;
}

export class Sidecar {
  readonly records: FlowRecordLine[] = [];
  stderr = '';
  readonly runtime: SidecarRuntime = sidecarRuntime();
  private proc: ChildProcess | undefined;
  private exited: Promise<number | null> | undefined;
  private waiters: Array<{ match: (r: FlowRecordLine) => boolean; resolve: (r: FlowRecordLine) => void }> = [];
  /** Image runtime: the running proxy's container, its pid on the host, its memory cgroup. */
  private container: string | undefined;
  private pid: number | undefined;
  private cgroupDir: string | undefined;
  private starts = 0;
  /** Where the current proxy process's records and stderr begin (a suite may restart it). */
  private firstRecord = 0;
  private stderrFrom = 0;
  /** The current process's accepted = recorded check, once done. */
  private checked: { accepted: number; recorded: number } | undefined;

  constructor(private readonly topo: Topology) {}

  /** `sidewall init ARGS`: the test's own flags (what it tests) after the patch's `init`. */
  init(args: string[] = []): void {
    const r = runInit(this.topo, args);
    if (r.status !== 0) throw new Error(`sidewall init failed: ${r.stderr}`);
  }

  /**
   * Starts the proxy with the given config (YAML/JSON text) and waits for /ready (unless
   * waitReady is false); `cgroup`: started inside that cgroup folder.
   */
  async start(configText = 'mode: monitor\n', waitReady = true, options: { cgroup?: string; env?: NodeJS.ProcessEnv } = {}): Promise<void> {
    this.records.length = 0;
    this.pid = undefined;
    const proc = this.runtime.kind === 'image' ? this.startContainer(configText, options) : this.startTree(configText, options);
    this.proc = proc;
    this.firstRecord = this.records.length;
    this.stderrFrom = this.stderr.length;
    this.checked = undefined;
    this.exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
    proc.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    createInterface({ input: proc.stdout! }).on('line', (line) => this.onLine(line));
    if (!waitReady) return;
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      const r = await this.topo.execAsync(this.topo.podNs, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:15000/ready']);
      if (r.stdout === '200') return;
      if (proc.exitCode !== null) break;
      await new Promise((r2) => setTimeout(r2, 100));
    }
    throw new Error(`sidewall proxy did not become ready; stderr: ${this.stderr}`);
  }

  private startTree(configText: string, options: { cgroup?: string; env?: NodeJS.ProcessEnv }): ChildProcess {
    const config = this.topo.writeFile('sidecar.yaml', configText);
    this.cgroupDir = options.cgroup;
    return this.topo.start(this.topo.podNs, NODE, [CLI, 'proxy', '--config', config], {
      uid: PROXY_UID,
      env: { POD_NAME: 'app-0', POD_NAMESPACE: 'test', ...options.env },
      ...(options.cgroup !== undefined ? { cgroup: options.cgroup } : {}),
    });
  }

  /**
   * sidewall-proxy from the image: `podman run` (attached: its stdout and stderr are the
   * proxy's, its exit code the proxy's, SIGTERM/SIGINT forwarded) with everything derived from
   * the patch's container. Test-only additions, each needed because the kubelet's side of it is
   * not here: the Topology's folder at its own path (test configs name files in it), the pod's
   * resolver file when the test set one (the kubelet writes /etc/resolv.conf), and a memory limit
   * (--memory) when the test asks for a memory cgroup (the patch's limits.memory otherwise).
   */
  private startContainer(configText: string, options: { cgroup?: string; env?: NodeJS.ProcessEnv }): ChildProcess {
    const { proxy, volumes } = injectedSidecar();
    const n = ++this.starts;
    const base = join(this.topo.dir, `sidecar-${n}`);
    const hostDir = (volume: string): string => {
      const dir = join(base, volume);
      mkdirSync(dir, { recursive: true });
      // An emptyDir is writable by every uid (the kubelet makes it 0777).
      chmodSync(dir, 0o777);
      return dir;
    };
    const args = proxy.args ?? [];
    const configPath = args[args.indexOf('--config') + 1];
    const configMount = (proxy.volumeMounts ?? []).find((m) => configPath?.startsWith(`${m.mountPath}/`));
    if (configPath === undefined || configMount === undefined) throw new Error('the patch gives sidewall-proxy no --config file on a volume');
    // The config volume is the Topology's folder, its config file a link to sidecar.yaml: tests
    // rewrite that file to reload rules (as a ConfigMap update would), and relative paths in it
    // (tokenFile: token) resolve next to it, as from the tree.
    this.topo.writeFile('sidecar.yaml', configText);
    const link = join(this.topo.dir, relative(configMount.mountPath, configPath));
    if (!existsSync(link)) symlinkSync('sidecar.yaml', link);
    const volumeDir = (volume: string): string => (volume === configMount.name ? this.topo.dir : hostDir(volume));
    const env = { ...resolveContainerEnv(proxy, { 'metadata.name': 'app-0', 'metadata.namespace': 'test', 'status.podIP': this.topo.podIp, 'status.podIPs': `${this.topo.podIp},${this.topo.podIp6}`, 'spec.serviceAccountName': 'default' }), ...options.env };
    const extra = ['--volume', `${this.topo.dir}:${this.topo.dir}`];
    const resolver = `/etc/netns/${this.topo.podNs}/resolv.conf`;
    if (existsSync(resolver)) extra.push('--volume', `${resolver}:/etc/resolv.conf:ro`);
    const name = `${this.topo.podNs}-proxy-${n}`;
    spawnSync('podman', ['rm', '--force', '--time', '0', name], { stdio: 'ignore' });
    this.container = name;
    this.topo.onDestroy(() => void spawnSync('podman', ['rm', '--force', '--time', '0', name], { stdio: 'ignore' }));
    const memoryBytes = options.cgroup !== undefined ? Number(readFileSync(join(options.cgroup, 'memory.limit_in_bytes'), 'utf8').trim()) : undefined;
    const run = podmanRunArgs(proxy, volumes, { image: this.runtime.image, netns: this.topo.podNs, name, hostDir: volumeDir, env, extra, ...(memoryBytes !== undefined ? { memoryBytes } : {}) });
    return spawn('podman', run, {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  /** The proxy's own pid on the host (not podman's): /proc/PID/status is the proxy's. */
  proxyPid(): number {
    if (this.pid !== undefined) return this.pid;
    if (this.proc === undefined) throw new Error('the proxy is not started');
    if (this.container === undefined || this.runtime.kind === 'tree') {
      // `ip netns exec` + setpriv exec into node, so the child pid is the proxy itself.
      this.pid = this.proc.pid;
    } else {
      const r = spawnSync('podman', ['inspect', '--format', '{{.State.Pid}}', this.container], { encoding: 'utf8' });
      this.pid = Number(r.stdout.trim());
    }
    if (this.pid === undefined || !(this.pid > 0)) throw new Error('the proxy has no pid');
    return this.pid;
  }

  /** The host folder of the memory cgroup the proxy runs in (the one whose limit it sees). */
  memoryCgroupDir(): string | undefined {
    if (this.runtime.kind === 'tree') return this.cgroupDir;
    const line = readFileSync(`/proc/${this.proxyPid()}/cgroup`, 'utf8').split('\n').find((l) => /^\d+:memory:/.test(l));
    return line === undefined ? undefined : join('/sys/fs/cgroup/memory', line.slice(line.indexOf(':memory:') + ':memory:'.length));
  }

  private kill(signal: NodeJS.Signals): void {
    if (this.proc === undefined || this.proc.exitCode !== null) return;
    if (this.runtime.kind === 'image' && this.container !== undefined && signal === 'SIGKILL') {
      // SIGKILL cannot be forwarded: podman would die and leave the container running.
      spawn('podman', ['kill', '--signal', 'KILL', this.container], { stdio: 'ignore' });
      return;
    }
    // podman run forwards the signal to the container's init, the proxy (--sig-proxy).
    this.proc.kill(signal);
  }

  private onLine(line: string): void {
    let record: FlowRecordLine;
    try {
      record = JSON.parse(line) as FlowRecordLine;
    } catch {
      throw new Error(`stdout line is not JSON: ${line}`);
    }
    this.records.push(record);
    this.waiters = this.waiters.filter((w) => {
      if (!w.match(record)) return true;
      w.resolve(record);
      return false;
    });
  }

  /** Resolves with the first record (already seen or future) that matches. */
  waitForRecord(match: (r: FlowRecordLine) => boolean, timeoutMs = 10_000): Promise<FlowRecordLine> {
    const seen = this.records.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching flow record within ${timeoutMs} ms; have ${this.records.length}: ${JSON.stringify(this.records.slice(-5))}`)), timeoutMs);
      this.waiters.push({ match, resolve: (r) => { clearTimeout(timer); resolve(r); } });
    });
  }

  /** Sends `signal` to the proxy and resolves with its exit code (podman run's is the proxy's). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (!this.proc || this.proc.exitCode !== null) return this.proc?.exitCode ?? null;
    this.kill(signal);
    return this.exited ?? null;
  }

  /** The sum of a metric's samples (all label sets) from /metrics on the admin port. */
  async metric(name: string): Promise<number> {
    const r = await this.topo.execAsync(this.topo.podNs, 'curl', ['-s', 'http://127.0.0.1:15000/metrics']);
    let sum = 0;
    for (const line of r.stdout.split('\n')) {
      if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return sum;
  }

  /**
   * Every connection the proxy ever accepted ended in exactly one final record: stops the proxy
   * with SIGTERM (the drain closes what is open, each with its record), then compares the count
   * it logs at exit with the final `connection` records on stdout, which must have distinct flow
   * ids. Throws with the numbers when they differ. Only this process's records count (a suite may
   * have restarted it); the non-TCP guard's first-packet records are not accepted connections.
   */
  async stopAndCheckRecords(timeoutMs = 30_000): Promise<{ accepted: number; recorded: number }> {
    if (this.checked !== undefined) return this.checked;
    const timer = setTimeout(() => this.kill('SIGKILL'), timeoutMs);
    const code = await this.stop('SIGTERM');
    clearTimeout(timer);
    await new Promise((r) => setTimeout(r, 50)); // the last stdout/stderr lines of the exited process
    const accepted = this.stoppedCount();
    if (code !== 0 || accepted === undefined) throw new Error(`proxy exited ${code} without its 'stopped' line; stderr tail: ${this.stderr.slice(-2000)}`);
    return this.compare(accepted);
  }

  /**
   * A suite's afterAll: a running proxy is stopped with stopAndCheckRecords (accepted = recorded);
   * one the suite already stopped with SIGTERM is checked from what it wrote; one it killed
   * (SIGKILL, no 'stopped' line) cannot be, and is left as it is.
   */
  async teardown(): Promise<{ accepted: number; recorded: number } | null> {
    if (this.proc === undefined) return null;
    if (this.proc.exitCode === null && this.proc.signalCode === null) return this.stopAndCheckRecords();
    if (this.checked !== undefined) return this.checked;
    await new Promise((r) => setTimeout(r, 50));
    const accepted = this.stoppedCount();
    return accepted === undefined ? null : this.compare(accepted);
  }

  /** The accepted-connection count the current process logged at exit ('stopped'), if it did. */
  private stoppedCount(): number | undefined {
    let accepted: number | undefined;
    for (const line of this.stderr.slice(this.stderrFrom).split('\n')) {
      if (!line.includes('"stopped"')) continue;
      try {
        const entry = JSON.parse(line) as { msg?: string; accepted?: number };
        if (entry.msg === 'stopped') accepted = entry.accepted;
      } catch {
        // not a log line
      }
    }
    return accepted;
  }

  private compare(accepted: number): { accepted: number; recorded: number } {
    // The non-TCP guard's flows (udp, icmp, ip-N) are recorded as connections too, but no listener accepted them.
    const finals = this.records.slice(this.firstRecord).filter((r) => r.type === 'connection' && r.interim !== true && !NON_TCP.test(r.protocol));
    const ids = new Set(finals.map((r) => r.flowId));
    if (ids.size !== finals.length) throw new Error(`${finals.length - ids.size} connections have more than one final record`);
    if (accepted !== finals.length) {
      const reasons: Record<string, number> = {};
      for (const r of finals) reasons[String(r.reason)] = (reasons[String(r.reason)] ?? 0) + 1;
      throw new Error(`proxy accepted ${accepted} connections but wrote ${finals.length} final connection records (by reason: ${JSON.stringify(reasons)})`);
    }
    this.checked = { accepted, recorded: finals.length };
    return this.checked;
  }

  get process(): ChildProcess | undefined {
    return this.proc;
  }
}

/**
 * `sidewall init ARGS` in the pod's namespace, as the init container runs it: from the image with
 * the patch's command, user and capabilities (`podman run --rm`), or from the tree as root.
 */
export function runInit(topo: Topology, args: string[]): ExecResult {
  const runtime = sidecarRuntime();
  if (runtime.kind === 'tree') return topo.exec(topo.podNs, NODE, [CLI, 'init', ...args]);
  const { init } = injectedSidecar();
  const sub = init.args?.[0];
  if (sub !== 'init') throw new Error(`the patch's sidewall-init runs '${String(sub)}', not init`);
  const run = podmanRunArgs(init, [], { image: runtime.image, netns: topo.podNs, hostDir: () => topo.dir, args: [sub, ...args] });
  const r = spawnSync('podman', run, { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}
