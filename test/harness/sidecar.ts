// The sidecar inside a Topology's pod namespace, started the way the injected pod starts it:
// `sidewall init` as root (the init container), then `sidewall proxy` as uid 1337.
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { CLI, NODE, PROXY_UID, type Topology } from './netns.js';

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
  private proc: ChildProcess | undefined;
  private exited: Promise<number | null> | undefined;
  private waiters: Array<{ match: (r: FlowRecordLine) => boolean; resolve: (r: FlowRecordLine) => void }> = [];

  constructor(private readonly topo: Topology) {}

  init(args: string[] = []): void {
    const r = this.topo.exec(this.topo.podNs, NODE, [CLI, 'init', ...args]);
    if (r.status !== 0) throw new Error(`sidewall init failed: ${r.stderr}`);
  }

  /**
   * Starts the proxy with the given config (YAML/JSON text) and waits for /ready (unless
   * waitReady is false); `cgroup`: started inside that cgroup folder.
   */
  async start(configText = 'mode: monitor\n', waitReady = true, options: { cgroup?: string; env?: NodeJS.ProcessEnv } = {}): Promise<void> {
    const config = this.topo.writeFile('sidecar.yaml', configText);
    const proc = this.topo.start(this.topo.podNs, NODE, [CLI, 'proxy', '--config', config], {
      uid: PROXY_UID,
      env: { POD_NAME: 'app-0', POD_NAMESPACE: 'test', ...options.env },
      ...(options.cgroup !== undefined ? { cgroup: options.cgroup } : {}),
    });
    this.proc = proc;
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

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (!this.proc || this.proc.exitCode !== null) return this.proc?.exitCode ?? null;
    // `ip netns exec` + setpriv exec into node, so the child pid is the proxy itself.
    this.proc.kill(signal);
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
   * ids. Throws with the numbers when they differ.
   */
  async stopAndCheckRecords(timeoutMs = 30_000): Promise<{ accepted: number; recorded: number }> {
    const timer = setTimeout(() => this.proc?.kill('SIGKILL'), timeoutMs);
    const code = await this.stop('SIGTERM');
    clearTimeout(timer);
    await new Promise((r) => setTimeout(r, 50)); // the last stdout/stderr lines of the exited process
    let accepted: number | undefined;
    for (const line of this.stderr.split('\n')) {
      if (!line.includes('"stopped"')) continue;
      try {
        const entry = JSON.parse(line) as { msg?: string; accepted?: number };
        if (entry.msg === 'stopped') accepted = entry.accepted;
      } catch {
        // not a log line
      }
    }
    const finals = this.records.filter((r) => r.type === 'connection' && r.interim !== true);
    const ids = new Set(finals.map((r) => r.flowId));
    if (code !== 0 || accepted === undefined) throw new Error(`proxy exited ${code} without its 'stopped' line; stderr tail: ${this.stderr.slice(-2000)}`);
    if (ids.size !== finals.length) throw new Error(`${finals.length - ids.size} connections have more than one final record`);
    if (accepted !== finals.length) throw new Error(`proxy accepted ${accepted} connections but wrote ${finals.length} final connection records`);
    return { accepted, recorded: finals.length };
  }

  get process(): ChildProcess | undefined {
    return this.proc;
  }
}
