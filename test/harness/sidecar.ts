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

  /** Starts the proxy with the given config (YAML/JSON text) and waits for /ready (unless waitReady is false). */
  async start(configText = 'mode: monitor\n', waitReady = true): Promise<void> {
    const config = this.topo.writeFile('sidecar.yaml', configText);
    const proc = this.topo.start(this.topo.podNs, NODE, [CLI, 'proxy', '--config', config], { uid: PROXY_UID, env: { POD_NAME: 'app-0', POD_NAMESPACE: 'test' } });
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

  get process(): ChildProcess | undefined {
    return this.proc;
  }
}
