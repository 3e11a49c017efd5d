// `npm run bench` (issue 7): sidewall beside a direct path and HAProxy 2.6, in one namespace
// topology, interleaved rounds, medians; then a CPU profile of the sidecar. Writes perf/RESULTS.md.
//
//   node dist/perf/bench.js [--quick] [--rounds N] [--duration S] [--rate R] [--no-profile] [--output FILE]
//
// Topology (test/harness): namespace swbn-pod (10.77.60.1) runs `sidewall init` and the proxy as
// uid 1337 exactly as injected, and HAProxy as uid 1338 on 127.0.0.1 (excluded from redirection
// by a bench-only nat rule: the pod's own rules exempt only the proxy's marked sockets);
// namespace swbn-peer (10.77.60.2) runs nginx (HTTP/1.1 :80, h2c :8080, /upload reading 1 MiB
// bodies), a grpc-js echo server (:50051), a UDP DNS responder (:53) and a UDP echo (:7000 through the sidecar, :7001 denied, :7002 direct).
// Clients run in the pod namespace: as uid 1338 for the direct and HAProxy paths, as app uid 1000
// for the path through the sidecar.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { APP_UID, CLI, DIRECT_UID, NODE, PROXY_UID, REPO, Topology, waitForLine, type ExecResult } from '../test/harness/netns.js';
import { Sidecar } from '../test/harness/sidecar.js';
import type { LoadResult, UdpFlowsResult } from './bench-tools.js';
import { BENCH_UDP_RULE, exemptDirectUidNonTcp, HAPROXY_PORTS, haproxyConfig, nginxConfig, PEER_PORTS, sidecarConfig, UDP_CONNTRACK_TIMEOUT_S, uploadBody, uploadScript, UPLOAD_BYTES, type SidecarVariantConfig } from './bench-setup.js';
import { summariseCpuProfile, type ProfileSummary } from './cpu-profile-summary.js';
import { writeResults } from './bench-report.js';
import { parseH2load, parseWrk, type ParsedLoad } from './load-output.js';
import { CLK_TCK, median, procCpu, rssMiB, threadCpu } from './proc-stats.js';

export { parseH2load, parseWrk } from './load-output.js';

const TOOLS_JS = join(REPO, 'dist', 'perf', 'bench-tools.js');

export interface BenchOptions {
  rounds: number;
  durationS: number;
  /** Paced workload rate; undefined: half the sidecar's keep-alive rate measured in round 1. */
  rate: number | undefined;
  profile: boolean;
  quick: boolean;
  output: string;
  /** Namespaces swNAME-pod/-peer on 10.77.SUBNET.0/24 (machine-wide: one per concurrent run). */
  topoName: string;
  topoSubnet: number;
}

const USAGE = `usage: npm run bench -- [--quick] [--rounds N] [--duration S] [--rate R] [--no-profile] [--output FILE] [--topo NAME:SUBNET]
  --quick        1 round of 2 s runs (~2.5 minutes) instead of 5 rounds of 2 s (~8 minutes)
  --rounds N     interleaved rounds; medians are taken over them
  --duration S   seconds per load run
  --rate R       requests/s of the fixed-rate latency run (default: half the sidecar's keep-alive rate)
  --no-profile   skip the CPU profile of the sidecar
  --output FILE  where to write the report (default perf/RESULTS.md)
  --topo N:S     namespaces swN-pod/swN-peer on 10.77.S.0/24 (default bn:60; another one when
                 another bench or test may run at the same time)
`;

class UsageError extends Error {
  readonly code = 'BENCH_USAGE';
}

function parseOptions(argv: string[]): BenchOptions {
  const options: BenchOptions = { rounds: 5, durationS: 2, rate: undefined, profile: true, quick: false, output: join(REPO, 'perf', 'RESULTS.md'), topoName: 'bn', topoSubnet: 60 };
  const positive = (flag: string, text: string | undefined): number => {
    const n = Number(text);
    if (text === undefined || !Number.isFinite(n) || n <= 0) throw new UsageError(`${flag}: '${text ?? ''}' is not a positive number`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--quick') {
      options.quick = true;
      options.rounds = 1;
    } else if (arg === '--rounds') options.rounds = Math.round(positive(arg, argv[++i]));
    else if (arg === '--duration') options.durationS = positive(arg, argv[++i]);
    else if (arg === '--rate') options.rate = positive(arg, argv[++i]);
    else if (arg === '--no-profile') options.profile = false;
    else if (arg === '--output') options.output = argv[++i] ?? options.output;
    else if (arg === '--topo') {
      const m = /^([a-z0-9]{1,6}):(\d{1,3})$/.exec(argv[++i] ?? '');
      if (!m || Number(m[2]) > 254) throw new UsageError(`--topo: expected NAME:SUBNET (e.g. bn:60)\n${USAGE}`);
      options.topoName = m[1] as string;
      options.topoSubnet = Number(m[2]);
    }
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else throw new UsageError(`unknown argument '${arg}'\n${USAGE}`);
  }
  return options;
}

// ---- variants and workloads

export type VariantName = 'direct' | 'sidewall' | 'haproxy-tcp' | 'haproxy-http' | 'node-relay' | 'node-relay-nat' | 'sidewall-1000-rules' | 'sidewall-no-export' | 'sidewall-dlp' | 'sidewall-capture';
export type WorkloadName = 'keepalive' | 'serial' | 'connclose' | 'mib' | 'h2c' | 'grpc' | 'paced' | 'dns' | 'dlp-upload' | 'udp-flow' | 'capture';

interface Endpoint {
  host: string;
  port: number;
}

interface Variant {
  name: VariantName;
  uid: number;
  http: Endpoint;
  h2c: Endpoint;
  grpc: Endpoint;
  dns: Endpoint | undefined;
  /** The UDP echo of the udp-flow workload (direct and through the sidecar's NFQUEUE guard only). */
  udp: Endpoint | undefined;
  /** The proxy process whose CPU and memory are charged to the variant. */
  pid(): number | undefined;
}

export interface Sample {
  round: number;
  variant: VariantName;
  workload: WorkloadName;
  requests: number;
  errors: number;
  rps: number;
  p50Us: number;
  p99Us: number;
  meanUs: number;
  /** Proxy CPU per request (user + system), from /proc/<pid>/stat. */
  cpuUsPerRequest: number;
  userUsPerRequest: number;
  sysUsPerRequest: number;
  mibPerSecond: number;
  /** Flow records the sidecar exported during the run (sidewall variants). */
  records: number;
  note: string;
}

export interface MemorySample {
  variant: string;
  freshMiB: number;
  afterLoadMiB: number;
  with1000MiB: number;
  /** 1,000 keep-alive connections at rest (3 s) after each fetched 1 MiB: what bulk leaves held. */
  bulkIdleMiB?: number;
  /** For the V8 flag experiment: what the flag costs in throughput and CPU (one keep-alive run). */
  keepaliveRps?: number;
  keepaliveCpuUs?: number;
}

export type ProfileWorkload = 'keepalive' | 'connclose' | 'mib';
const PROFILE_WORKLOADS: ProfileWorkload[] = ['keepalive', 'connclose', 'mib'];

export interface CpuProfileRun {
  workload: ProfileWorkload;
  requests: number;
  /** A copy of the .cpuprofile (open in Chrome DevTools). */
  file: string;
  summary: ProfileSummary;
}

export interface SyscallProfile {
  variant: string;
  workload: ProfileWorkload;
  requests: number;
  seconds: number;
  taskClockUsPerRequest: number;
  contextSwitchesPerRequest: number;
  syscallsPerRequest: number;
  bySyscall: Array<{ name: string; perRequest: number }>;
  userUsPerRequest: number;
  sysUsPerRequest: number;
  /** CPU µs per request by thread name (from /proc/<pid>/task). */
  byThread: Array<{ thread: string; usPerRequest: number }>;
}

export interface BenchRun {
  options: BenchOptions;
  machine: Record<string, string>;
  samples: Sample[];
  memory: MemorySample[];
  pacedRate: number;
  dnsNote: string;
  profiles: CpuProfileRun[];
  syscalls: SyscallProfile[];
  commands: string[];
  findings: string[];
  startedAt: string;
  elapsedS: number;
}

/** Which variants run which workloads. The rules and export variants isolate one cost each. */
const MAIN_WORKLOADS: WorkloadName[] = ['keepalive', 'serial', 'connclose', 'mib', 'h2c', 'grpc', 'paced', 'dns', 'dlp-upload', 'udp-flow', 'capture'];
/**
 * The issue 18 workloads run only the variants their cost is read against (the bench's runtime):
 * uploads without DLP beside HAProxy tcp and direct (sidewall-dlp runs with the cost variants, its
 * own sidecar); new UDP flows direct vs through the guard; keep-alive with and without a capture,
 * back to back on the same sidecar.
 */
const WORKLOAD_VARIANTS: Partial<Record<WorkloadName, VariantName[]>> = {
  'dlp-upload': ['direct', 'sidewall', 'haproxy-tcp'],
  'udp-flow': ['direct', 'sidewall'],
  capture: ['sidewall', 'sidewall-capture'],
};
const MAIN_VARIANTS: VariantName[] = ['direct', 'sidewall', 'haproxy-tcp', 'haproxy-http'];
/** paced too: how much of the added latency at a fixed rate the rules and the export account for. */
const COST_WORKLOADS: WorkloadName[] = ['keepalive', 'connclose', 'paced'];
/** The plain Node relay (a reference floor, not a goal): only where it says something. */
const RELAY_WORKLOADS = new Set<WorkloadName>(['keepalive', 'serial', 'connclose', 'mib']);
const MAIN_VARIANTS_WITH_RELAY: VariantName[] = [...MAIN_VARIANTS, 'node-relay', 'node-relay-nat'];
const RELAY_PORT = 18200;
/** An address nobody has (.9 of the topology's subnet): the pod's OUTPUT nat chain REDIRECTs it to the relay, as sidewall init does for apps. */
const relayNatIp = (subnet: number): string => `10.77.${subnet}.9`;
/** The node pacing client keeps its schedule up to about this rate on 2 shared cores. */
export const PACED_RATE_CAP = 5000;

/** Sidecars restarted at the end of each round, and what they run. */
const COST_VARIANTS: Array<{ name: 'sidewall-1000-rules' | 'sidewall-no-export' | 'sidewall-dlp'; workloads: WorkloadName[] }> = [
  { name: 'sidewall-1000-rules', workloads: COST_WORKLOADS },
  { name: 'sidewall-no-export', workloads: COST_WORKLOADS },
  { name: 'sidewall-dlp', workloads: ['dlp-upload'] },
];

const SIDECAR_VARIANTS: Record<'sidewall' | 'sidewall-1000-rules' | 'sidewall-no-export' | 'sidewall-dlp', SidecarVariantConfig> = {
  sidewall: { name: 'sidewall', ruleCount: 10, exportStdout: true },
  'sidewall-1000-rules': { name: 'sidewall-1000-rules', ruleCount: 1000, exportStdout: true },
  'sidewall-no-export': { name: 'sidewall-no-export', ruleCount: 10, exportStdout: false },
  'sidewall-dlp': { name: 'sidewall-dlp', ruleCount: 10, exportStdout: true, dlp: true },
};

// ---- /proc readings

function processName(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '(gone)';
  }
}

// ---- the bench

class Bench {
  readonly topo: Topology;
  private sidecar: Sidecar | undefined;
  private sidecarVariant: SidecarVariantConfig | undefined;
  private haproxy: ChildProcess | undefined;
  private relay: ChildProcess | undefined;
  private readonly extraChildren = new Set<ChildProcess>();
  readonly samples: Sample[] = [];
  readonly memory: MemorySample[] = [];
  readonly commands = new Set<string>();
  pacedRate = 0;
  dnsNote = '';
  dnsThroughSidecar = false;
  readonly profiles: CpuProfileRun[] = [];
  readonly syscalls: SyscallProfile[] = [];
  /** Things the bench noticed about the sidecar besides numbers (slow stop, failures). */
  readonly findings = new Set<string>();
  private readonly subnet: string;
  private readonly relayNatIp: string;
  /** The capture volume of every sidecar the bench starts (the capture workload writes there). */
  private readonly captureDir: string;
  private uploadScriptFile = '';
  private probeBodyFile = '';
  /** udp-flow: the source port the next run starts from (bench-tools udp-flows). */
  private udpPort = 20000;
  /** udp-flow: the last run's client result (flows sent and answered, warm-up included). */
  private lastUdp: UdpFlowsResult | undefined;
  /** capture: the id of the capture running during the current sidewall-capture run. */
  private captureId: string | undefined;

  constructor(
    readonly options: BenchOptions,
    readonly startedAt: string,
  ) {
    this.topo = new Topology({ name: options.topoName, subnet: options.topoSubnet });
    this.subnet = `10.77.${options.topoSubnet}.0/24`;
    this.relayNatIp = relayNatIp(options.topoSubnet);
    this.captureDir = join(this.topo.dir, 'captures');
  }

  private log(message: string): void {
    process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
  }

  private run(ns: string, cmd: string, args: string[], uid: number): Promise<ExecResult> {
    this.commands.add(`${cmd} ${args.map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(' ')}`.replace(/\d+\.\d+\.\d+\.\d+:\d+|127\.0\.0\.1:\d+|\d+\.\d+\.\d+\.\d+/g, 'TARGET').replace(/-d\d+(\.\d+)?s/, '-dDs').replace(/ -D [\d.]+/, ' -D D'));
    return this.topo.execAsync(ns, cmd, args, { uid });
  }

  async setUp(): Promise<void> {
    const t = this.topo;
    this.log(`creating namespaces ${t.podNs} and ${t.peerNs}`);
    t.create();
    for (const ns of [t.podNs, t.peerNs]) {
      // Many short connections: a wide port range (above every listener of the bench: 15000-15053,
      // 18000-18200) and TIME_WAIT reuse, as on a busy node.
      t.exec(ns, 'sysctl', ['-q', '-w', 'net.ipv4.ip_local_port_range=20000 65000', 'net.ipv4.tcp_tw_reuse=1', 'net.core.somaxconn=4096', 'net.ipv4.tcp_max_syn_backlog=4096']);
    }
    mkdirSync(join(t.dir, 'www'), { mode: 0o755 });
    writeFileSync(join(t.dir, 'www', '1m'), Buffer.alloc(1 << 20, 0x5a), { mode: 0o644 });
    const nginxConf = t.writeFile('nginx.conf', nginxConfig(t.dir, t.peerIp));
    const nginx = t.start(t.peerNs, 'nginx', ['-c', nginxConf]);
    nginx.stdout?.resume();
    const haproxyConf = t.writeFile('haproxy.cfg', haproxyConfig(t.peerIp));
    const grpc = t.start(t.peerNs, NODE, [TOOLS_JS, 'grpc-server', t.peerIp, String(PEER_PORTS.grpc)]);
    const dns = t.start(t.peerNs, NODE, [TOOLS_JS, 'dns-server', t.peerIp, String(PEER_PORTS.dns)]);
    const udpEcho = t.start(t.peerNs, NODE, [TOOLS_JS, 'udp-echo', t.peerIp, `${PEER_PORTS.udp},${PEER_PORTS.udpDenied},${PEER_PORTS.udpDirect}`]);
    await Promise.all([waitForLine(grpc, (l) => l === 'listening', 15_000, 'grpc server'), waitForLine(dns, (l) => l === 'listening', 15_000, 'dns server'), waitForLine(udpEcho, (l) => l === 'listening', 15_000, 'udp echo')]);
    // dlp-upload: the clean 1 MiB body wrk posts, and the probe that DLP must block.
    const body = join(t.dir, 'upload.json');
    writeFileSync(body, uploadBody(), { mode: 0o644 });
    this.probeBodyFile = join(t.dir, 'upload-probe.json');
    writeFileSync(this.probeBodyFile, uploadBody(true), { mode: 0o644 });
    this.uploadScriptFile = t.writeFile('upload.lua', uploadScript(body));
    mkdirSync(this.captureDir, { mode: 0o700 });
    chownSync(this.captureDir, PROXY_UID, PROXY_UID);
    await this.waitForHttp(t.podNs, `http://${t.peerIp}/small`, DIRECT_UID, 'nginx');

    // The sidecar forwards DNS to the pod's resolver: here the peer's responder (the Sidecar
    // harness hands our environment to the proxy).
    process.env.SIDEWALL_DNS_RESOLVER = t.peerIp;
    // The pod: redirection as the init container writes it (DNS too), then HAProxy beside it.
    new Sidecar(t).init(['--redirect-dns']);
    t.exemptDirectUid(); // the direct path and the baselines do not go through the sidecar
    exemptDirectUidNonTcp(t); // nor the direct path's UDP flows (the NFQUEUE guard)
    // conntrack remembers a finished UDP flow 30 s by default; udp-flows walks source ports one by
    // one, so a short memory keeps every flow a NEW one (bench-tools udpFlows).
    t.exec(t.podNs, 'sysctl', ['-q', '-w', `net.netfilter.nf_conntrack_udp_timeout=${UDP_CONNTRACK_TIMEOUT_S}`]);
    this.haproxy = t.start(t.podNs, 'haproxy', ['-f', haproxyConf, '-db'], { uid: DIRECT_UID });
    let haproxyErr = '';
    this.haproxy.stdout?.resume();
    this.haproxy.stderr?.on('data', (d: Buffer) => (haproxyErr = (haproxyErr + d.toString()).slice(-2000)));
    await this.waitForHttp(t.podNs, `http://127.0.0.1:${HAPROXY_PORTS.http.http}/small`, DIRECT_UID, 'haproxy').catch((err: Error) => {
      throw new Error(`${err.message}; haproxy stderr: ${haproxyErr}`);
    });
    if (processName(this.haproxy.pid as number) !== 'haproxy') throw new Error(`haproxy pid ${this.haproxy.pid} is ${processName(this.haproxy.pid as number)}`);
    this.relay = t.start(t.podNs, NODE, [TOOLS_JS, 'relay', String(RELAY_PORT), t.peerIp, String(PEER_PORTS.http)], { uid: DIRECT_UID });
    await waitForLine(this.relay, (l) => l === 'listening', 15_000, 'node relay');
    // The same relay reached through an iptables REDIRECT (conntrack + NAT on the client leg, as
    // for every app connection to the sidecar): separates the kernel's NAT cost from sidewall's own.
    const nat = t.exec(t.podNs, 'iptables', ['-t', 'nat', '-I', 'OUTPUT', '1', '-p', 'tcp', '-d', `${this.relayNatIp}/32`, '--dport', String(PEER_PORTS.http), '-j', 'REDIRECT', '--to-ports', String(RELAY_PORT)]);
    if (nat.status !== 0) throw new Error(`iptables REDIRECT for the relay: ${nat.stderr}`);
    await this.startSidecar(SIDECAR_VARIANTS.sidewall);
    this.memory.push({ variant: 'haproxy', freshMiB: rssMiB(this.haproxy.pid as number), afterLoadMiB: NaN, with1000MiB: NaN });
    await this.probeDns();
    await this.probeUdp();
  }

  private async waitForHttp(ns: string, url: string, uid: number, what: string): Promise<void> {
    const deadline = Date.now() + 15_000;
    let last: ExecResult | undefined;
    while (Date.now() < deadline) {
      last = await this.topo.execAsync(ns, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '2', url], { uid });
      if (last.stdout === '200') return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${what} did not answer ${url}: ${last?.stdout} ${last?.stderr}`);
  }

  /** SIGTERM (the sidecar drains), SIGKILL if it is still there after 5 s; a slow stop is a finding. */
  private async stopSidecar(): Promise<void> {
    const sidecar = this.sidecar;
    if (sidecar === undefined) return;
    this.sidecar = undefined;
    this.sidecarVariant = undefined;
    const started = Date.now();
    const stopped = await Promise.race([sidecar.stop('SIGTERM').then(() => true), sleep(5000).then(() => false)]);
    if (!stopped) {
      const stderr = sidecar.stderr.trim().split('\n').slice(-3).join(' | ');
      this.findings.add(`the sidecar did not exit within 5 s of SIGTERM (drainTimeoutMs 1000; killed); last stderr: ${stderr.slice(0, 600)}`);
      this.log('the sidecar did not exit within 5 s of SIGTERM: SIGKILL');
      await sidecar.stop('SIGKILL');
    } else this.log(`sidecar stopped in ${Date.now() - started} ms`);
  }

  private async startSidecar(variant: SidecarVariantConfig): Promise<void> {
    await this.stopSidecar();
    this.log(`starting the sidecar: ${variant.name} (${variant.ruleCount} rules, stdout export ${variant.exportStdout ? 'on' : 'off'})`);
    const sidecar = new Sidecar(this.topo);
    await sidecar.start(sidecarConfig({ ...variant, captureDir: this.captureDir }, this.subnet));
    const pid = sidecar.process?.pid as number;
    // ip netns exec → setpriv → node all exec, so the child pid is node itself.
    if (processName(pid) !== 'node') throw new Error(`sidecar pid ${pid} is '${processName(pid)}', not node`);
    this.sidecar = sidecar;
    this.sidecarVariant = variant;
    // A first request through the firewall proves the rules allow the bench traffic.
    const check = await this.topo.execAsync(this.topo.podNs, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', `http://${this.topo.peerIp}/small`], { uid: APP_UID });
    if (check.stdout !== '200') throw new Error(`request through the sidecar got '${check.stdout}' (${check.stderr}); sidecar stderr: ${sidecar.stderr.slice(-2000)}`);
    if (variant.exportStdout) await sidecar.waitForRecord((r) => r.type === 'request' && r.verdict === 'allowed', 5000);
    if (variant.dlp === true) {
      await this.probeDlp(sidecar);
      // The DLP scanner runs nowhere else in the bench: a fresh sidecar's first uploads would be
      // scanned by unoptimised code (4-6x the CPU per MiB of a warm one at load 12-16), while the
      // sidewall variant it is compared with has been warm for minutes. Uploads for 2 s, unmeasured.
      await this.run(this.topo.podNs, 'wrk', ['-t1', '-c4', '-d2s', '-s', this.uploadScriptFile, `http://${this.topo.peerIp}/upload`], APP_UID);
    }
    sidecar.records.splice(0);
  }

  /**
   * DLP is on and scans the whole 1 MiB: a card number 200 bytes before the end of an upload is
   * blocked (403) and raises a dlp alert. Otherwise the dlp-upload numbers would not show DLP's cost.
   */
  private async probeDlp(sidecar: Sidecar): Promise<void> {
    const t = this.topo;
    const r = await t.execAsync(t.podNs, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', '-H', 'Content-Type: application/json', '--data-binary', `@${this.probeBodyFile}`, `http://${t.peerIp}/upload`], { uid: APP_UID });
    const alert = await sidecar.waitForRecord((rec) => rec.type === 'alert' && rec.dlp !== undefined, 3000).catch(() => undefined);
    if (r.stdout !== '403' || alert === undefined) {
      this.findings.add(`dlp-upload: the sidecar with DLP did not block a 1 MiB upload with a card number 200 bytes before its end (status '${r.stdout}', ${alert === undefined ? 'no' : 'a'} dlp alert): DLP did not take effect or does not scan the whole body, so sidewall-dlp does not show DLP's cost`);
      this.log(`DLP probe: status ${r.stdout}, alert ${alert !== undefined}`);
    }
  }

  /**
   * udp-flow goes through the NFQUEUE guard's decision: an app's flow to the allowed port is
   * answered and recorded; one to PEER_PORTS.udpDenied (no rule) is dropped and recorded as denied;
   * the direct uid's flow is answered and not recorded (exempted).
   */
  private async probeUdp(): Promise<void> {
    const t = this.topo;
    const sidecar = this.sidecar as Sidecar;
    sidecar.records.splice(0);
    const probe = (port: number, uid: number): Promise<boolean> => t.execAsync(t.podNs, NODE, [TOOLS_JS, 'udp-probe', t.peerIp, String(port)], { uid }).then((r) => r.status === 0);
    const [allowed, denied, direct] = await Promise.all([probe(PEER_PORTS.udp, APP_UID), probe(PEER_PORTS.udpDenied, APP_UID), probe(PEER_PORTS.udpDirect, DIRECT_UID)]);
    await sleep(200);
    const seen = sidecar.records.splice(0).filter((r) => r.protocol === 'udp');
    const allowedRecord = seen.some((r) => r.dst.port === PEER_PORTS.udp && r.verdict === 'allowed' && r.ruleId === BENCH_UDP_RULE);
    const deniedRecord = seen.some((r) => r.dst.port === PEER_PORTS.udpDenied && r.verdict === 'denied');
    const problems: string[] = [];
    if (!allowed || !allowedRecord) problems.push(`a flow to port ${PEER_PORTS.udp} (rule ${BENCH_UDP_RULE}) was ${allowed ? '' : 'not '}answered and ${allowedRecord ? '' : 'not '}recorded as allowed`);
    if (denied || !deniedRecord) problems.push(`a flow to port ${PEER_PORTS.udpDenied} (no rule) was ${denied ? '' : 'not '}answered and ${deniedRecord ? '' : 'not '}recorded as denied`);
    if (!direct) problems.push(`the direct uid's flow to port ${PEER_PORTS.udpDirect} was not answered`);
    if (seen.length !== 2) problems.push(`${seen.length} UDP records for the app's 2 probe flows (the direct one must have none)`);
    if (problems.length > 0) this.findings.add(`udp-flow: the non-TCP path is not what the workload measures: ${problems.join('; ')}; records: ${JSON.stringify(seen).slice(0, 400)}`);
    this.log(`UDP probes: allowed ${allowed}/${allowedRecord}, denied ${!denied}/${deniedRecord}, direct ${direct}`);
  }

  /** An on-demand capture of every new connection to or from the peer (what `sidewall capture --peer` starts). */
  private async startCapture(): Promise<void> {
    const t = this.topo;
    const ms = Math.round(this.options.durationS * 1000) + 5000;
    const r = await t.execAsync(t.podNs, 'curl', ['-s', '--max-time', '3', '-X', 'POST', `http://127.0.0.1:15000/captures?peer=${t.peerIp}&durationMs=${ms}`], { uid: PROXY_UID });
    this.commands.add(`curl -X POST 'http://127.0.0.1:15000/captures?peer=PEER&durationMs=MS'   # as uid 1337 (sidewall capture --peer)`);
    try {
      this.captureId = (JSON.parse(r.stdout) as { id: string }).id;
    } catch {
      this.captureId = undefined;
      this.findings.add(`capture: POST /captures failed (${r.stdout.slice(0, 200)} ${r.stderr.slice(0, 200)}): the sidewall-capture runs measured no capture`);
    }
  }

  /** Ends the running capture; it must hold a frame per request and per response at least, none left out. */
  private async endCapture(requests: number): Promise<string> {
    const t = this.topo;
    const id = this.captureId;
    this.captureId = undefined;
    if (id === undefined) return 'no capture ran. ';
    const r = await t.execAsync(t.podNs, 'curl', ['-s', '--max-time', '3', '-X', 'DELETE', `http://127.0.0.1:15000/captures/${id}`], { uid: PROXY_UID });
    try {
      const info = JSON.parse(r.stdout) as { packets: number; bytes: number; truncated: boolean; flowCount: number };
      if (!(info.packets >= 2 * requests) || info.truncated) {
        this.findings.add(`capture: the capture holds ${info.packets} frames (${info.bytes} bytes, ${info.flowCount} flows${info.truncated ? ', truncated' : ''}) for ${requests} requests: it did not capture the measured flows`);
      }
      return `capture ${info.packets} frames, ${(info.bytes / 1024 ** 2).toFixed(1)} MiB, ${info.flowCount} flows. `;
    } catch {
      this.findings.add(`capture: DELETE /captures/${id} failed: ${r.stdout.slice(0, 200)}`);
      return '';
    }
  }

  private async probeDns(): Promise<void> {
    const t = this.topo;
    const direct = await t.execAsync(t.podNs, NODE, [TOOLS_JS, 'dns-probe', t.peerIp, String(PEER_PORTS.dns)], { uid: DIRECT_UID });
    if (direct.status !== 0) throw new Error(`the DNS responder does not answer directly: ${direct.stdout}${direct.stderr}`);
    const through = await t.execAsync(t.podNs, NODE, [TOOLS_JS, 'dns-probe', t.peerIp, String(PEER_PORTS.dns)], { uid: APP_UID });
    this.dnsThroughSidecar = through.status === 0;
    this.dnsNote = this.dnsThroughSidecar
      ? 'UDP queries of the app uid are redirected to the sidecar (port 15053) and answered.'
      : `not measurable: with \`sidewall init --redirect-dns\` a UDP query of the app uid to ${t.peerIp}:53 goes to port 15053, and the sidecar (SIDEWALL_DNS_RESOLVER=${t.peerIp}) does not answer it (${through.stdout.trim() || through.stderr.trim()}). The direct path is measured as the baseline.`;
    this.log(`DNS through the sidecar: ${this.dnsThroughSidecar ? 'answers' : 'no answer (not measurable yet)'}`);
  }

  private variant(name: VariantName): Variant {
    const t = this.topo;
    const peer = (port: number): Endpoint => ({ host: t.peerIp, port });
    const local = (port: number): Endpoint => ({ host: '127.0.0.1', port });
    const sidecarPid = (): number | undefined => this.sidecar?.process?.pid;
    const haproxyPid = (): number | undefined => this.haproxy?.pid;
    switch (name) {
      case 'direct':
        return { name, uid: DIRECT_UID, http: peer(PEER_PORTS.http), h2c: peer(PEER_PORTS.h2c), grpc: peer(PEER_PORTS.grpc), dns: peer(PEER_PORTS.dns), udp: peer(PEER_PORTS.udpDirect), pid: () => undefined };
      case 'node-relay':
      case 'node-relay-nat': {
        const relayPid = (): number | undefined => this.relay?.pid;
        const http = name === 'node-relay' ? local(RELAY_PORT) : { host: this.relayNatIp, port: PEER_PORTS.http };
        return { name, uid: DIRECT_UID, http, h2c: http, grpc: http, dns: undefined, udp: undefined, pid: relayPid };
      }
      case 'haproxy-tcp':
      case 'haproxy-http': {
        const ports = HAPROXY_PORTS[name === 'haproxy-tcp' ? 'tcp' : 'http'];
        return { name, uid: DIRECT_UID, http: local(ports.http), h2c: local(ports.h2c), grpc: local(ports.grpc), dns: undefined, udp: undefined, pid: haproxyPid };
      }
      default:
        return { name, uid: APP_UID, http: peer(PEER_PORTS.http), h2c: peer(PEER_PORTS.h2c), grpc: peer(PEER_PORTS.grpc), dns: this.dnsThroughSidecar ? peer(PEER_PORTS.dns) : undefined, udp: peer(PEER_PORTS.udp), pid: sidecarPid };
    }
  }

  private async load(v: Variant, workload: WorkloadName): Promise<ParsedLoad | undefined> {
    const ns = this.topo.podNs;
    const d = String(this.options.durationS);
    const url = (e: Endpoint, path: string): string => `http://${e.host}:${e.port}${path}`;
    const wrk = async (args: string[]): Promise<ParsedLoad> => {
      const r = await this.run(ns, 'wrk', ['-t1', `-d${d}s`, '--timeout', '5s', '--latency', ...args], v.uid);
      if (r.status !== 0) throw new Error(`wrk failed (${r.status}): ${r.stderr}`);
      return parseWrk(r.stdout);
    };
    const tool = async (args: string[]): Promise<ParsedLoad> => {
      const r = await this.run(ns, NODE, [TOOLS_JS, ...args], v.uid);
      if (r.status !== 0) throw new Error(`bench-tools ${args[0]} failed (${r.status}): ${r.stderr}`);
      const result = JSON.parse(r.stdout.trim().split('\n').pop() as string) as LoadResult;
      return { ...result, meanUs: NaN, bytesPerSecond: NaN };
    };
    switch (workload) {
      case 'keepalive':
        return wrk(['-c50', url(v.http, '/small')]);
      case 'serial':
        return wrk(['-c1', url(v.http, '/small')]);
      case 'connclose':
        return wrk(['-c10', '-H', 'Connection: close', url(v.http, '/small')]);
      case 'mib':
        return wrk(['-c4', url(v.http, '/1m')]);
      case 'h2c': {
        const r = await this.run(ns, 'h2load', ['-t1', '-c10', '-m10', '-D', `${Math.round(this.options.durationS * 1000)}ms`, '--warm-up-time=300ms', url(v.h2c, '/small')], v.uid);
        if (r.status !== 0) throw new Error(`h2load failed (${r.status}): ${r.stdout.slice(-500)} ${r.stderr}`);
        return parseH2load(r.stdout);
      }
      case 'grpc':
        return tool(['grpc-client', `${v.grpc.host}:${v.grpc.port}`, d, '20']);
      case 'paced':
        return tool(['paced', v.http.host, String(v.http.port), '/small', String(this.pacedRate), d, '10']);
      case 'dns':
        return v.dns ? tool(['dns-client', v.dns.host, String(v.dns.port), d, '20']) : undefined;
      case 'dlp-upload': {
        const load = await wrk(['-c4', '-s', this.uploadScriptFile, url(v.http, '/upload')]);
        // What went up: wrk's Transfer/sec counts only what came back.
        return { ...load, bytesPerSecond: load.rps * UPLOAD_BYTES };
      }
      case 'udp-flow': {
        if (v.udp === undefined) return undefined;
        const load = await tool(['udp-flows', v.udp.host, String(v.udp.port), d, '20', String(this.udpPort)]);
        this.lastUdp = load as unknown as UdpFlowsResult;
        this.udpPort = this.lastUdp.nextPort;
        return load;
      }
      case 'capture':
        // Keep-alive as in the keepalive workload; sidewall-capture with a capture running.
        return wrk(['-c50', url(v.http, '/small')]);
    }
  }

  private async measure(round: number, name: VariantName, workload: WorkloadName): Promise<void> {
    const v = this.variant(name);
    const pid = v.pid();
    if (name === 'sidewall-capture') await this.startCapture();
    const before = pid === undefined ? undefined : procCpu(pid);
    const result = await this.load(v, workload);
    if (result === undefined) return;
    const after = pid === undefined ? undefined : procCpu(pid);
    let extra = '';
    if (name === 'sidewall-capture') extra += await this.endCapture(result.requests);
    const usPerTick = 1e6 / CLK_TCK;
    const per = (ticks: number): number => (result.requests > 0 ? (ticks * usPerTick) / result.requests : NaN);
    let records = 0;
    let note = '';
    if (name.startsWith('sidewall') && this.sidecar) {
      const seen = this.sidecar.records.splice(0);
      records = seen.length;
      // wrk opens one connection first and closes it without a byte: default-denied at L4, harmless.
      const denied = seen.filter((r) => r.verdict === 'denied' && (r.type === 'request' || (r.bytes?.sent ?? 0) > 0));
      if (denied.length > 0) note = `${denied.length} records denied: ${JSON.stringify(denied[0])}`;
      if (workload === 'udp-flow' && this.lastUdp !== undefined) {
        // Every answered flow passed the guard's decision, which records it: fewer records than
        // answered flows means flows went by undecided (e.g. a remembered conntrack entry).
        await sleep(100);
        seen.push(...this.sidecar.records.splice(0));
        const decided = seen.filter((r) => r.protocol === 'udp' && r.dst.port === PEER_PORTS.udp && r.verdict === 'allowed').length;
        records = decided;
        extra += `${decided} udp records for ${this.lastUdp.answered} answered flows (${this.lastUdp.flows} sent). `;
        if (decided < this.lastUdp.answered) this.findings.add(`udp-flow round ${round}: ${decided} flow records for ${this.lastUdp.answered} answered flows: not every new flow was decided by the sidecar`);
      }
      const dlpAlerts = seen.filter((r) => r.type === 'alert' && r.dlp !== undefined);
      if (dlpAlerts.length > 0) this.findings.add(`dlp-upload: ${dlpAlerts.length} DLP alerts on the clean upload body (a false positive): ${JSON.stringify(dlpAlerts[0]).slice(0, 300)}`);
    }
    if (workload === 'udp-flow' && this.lastUdp !== undefined && this.lastUdp.errors > result.requests * 0.01) {
      this.findings.add(`udp-flow round ${round}, ${name}: ${this.lastUdp.errors} flows got no answer within 1 s (${result.requests} did)`);
    }
    if (workload === 'udp-flow' && records > 0 && name === 'direct') this.findings.add('udp-flow: the direct variant\'s flows were recorded by the sidecar (not exempted)');
    if (workload === 'dlp-upload' && result.errors > 0) this.findings.add(`dlp-upload round ${round}, ${name}: ${result.errors} uploads failed or were not answered 2xx`);
    if (round === 1 && name === 'sidewall') {
      // Every client of the run has exited: a connection the sidecar still counts is a leak.
      await sleep(300);
      const open = await this.activeSidecarConnections();
      if (open !== undefined && open > 0) {
        this.findings.add(`after the ${workload} run (all its clients exited, +0.3 s) the sidecar still counted ${open} active connection(s)`);
        this.log(`sidewall: ${open} connection(s) still open after ${workload}`);
      }
    }
    const sample: Sample = {
      round,
      variant: name,
      workload,
      requests: result.requests,
      errors: result.errors,
      rps: result.rps,
      p50Us: result.p50Us,
      p99Us: result.p99Us,
      meanUs: result.meanUs,
      cpuUsPerRequest: before && after ? per(after.user - before.user + after.sys - before.sys) : NaN,
      userUsPerRequest: before && after ? per(after.user - before.user) : NaN,
      sysUsPerRequest: before && after ? per(after.sys - before.sys) : NaN,
      mibPerSecond: result.bytesPerSecond / 1024 ** 2,
      records,
      note: (result.errors > 0 ? `${result.errors} errors. ` : '') + (result.skipped ? `${result.skipped} paced sends skipped (every connection still busy). ` : '') + extra + note,
    };
    this.samples.push(sample);
    const f = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toFixed(digits) : '-');
    this.log(`r${round} ${workload.padEnd(9)} ${name.padEnd(19)} ${f(sample.rps).padStart(7)} req/s  p50 ${f(sample.p50Us)} µs  p99 ${f(sample.p99Us)} µs  cpu ${f(sample.cpuUsPerRequest, 1)} µs/req${sample.errors ? `  errors ${sample.errors}` : ''}${note ? `  ${note.slice(0, 300)}` : ''}`);
  }

  private pacedRateFromKeepalive(): number {
    const keepalive = this.samples.filter((s) => s.workload === 'keepalive' && s.variant === 'sidewall').map((s) => s.rps);
    const half = Math.round((median(keepalive) || 2000) / 2 / 100) * 100;
    return Math.min(PACED_RATE_CAP, Math.max(200, half));
  }

  async rounds(): Promise<void> {
    const { rounds } = this.options;
    for (let round = 1; round <= rounds; round++) {
      if (this.sidecarVariant !== SIDECAR_VARIANTS.sidewall) await this.startSidecar(SIDECAR_VARIANTS.sidewall);
      if (round === 1) {
        const pid = this.sidecar?.process?.pid as number;
        this.memory.push({ variant: 'sidewall', freshMiB: rssMiB(pid), afterLoadMiB: NaN, with1000MiB: NaN });
      }
      for (const workload of MAIN_WORKLOADS) {
        if (workload === 'paced' && this.pacedRate === 0) {
          this.pacedRate = this.options.rate ?? this.pacedRateFromKeepalive();
          this.log(`fixed-rate runs at ${this.pacedRate} requests/s`);
        }
        // Rotate the order each round so no variant always runs first (warm caches, turbo, noise).
        const variants = WORKLOAD_VARIANTS[workload] ?? (RELAY_WORKLOADS.has(workload) ? MAIN_VARIANTS_WITH_RELAY : MAIN_VARIANTS);
        const order = variants.map((_, i) => variants[(i + round - 1) % variants.length] as VariantName);
        for (const variant of order) await this.measure(round, variant, workload);
      }
      if (round === rounds) {
        await this.measureMemory();
        await this.semiSpaceExperiment();
      }
      for (const { name, workloads } of COST_VARIANTS) {
        await this.startSidecar(SIDECAR_VARIANTS[name]);
        for (const workload of workloads) await this.measure(round, name, workload);
      }
    }
  }

  /** RSS after the load (idle again) and with 1,000 open keep-alive connections. */
  private async measureMemory(): Promise<void> {
    const sidecarPid = this.sidecar?.process?.pid as number;
    const haproxyPid = this.haproxy?.pid as number;
    await new Promise((r) => setTimeout(r, 1000));
    const sidewall = this.memory.find((m) => m.variant === 'sidewall') as MemorySample;
    const haproxy = this.memory.find((m) => m.variant === 'haproxy') as MemorySample;
    sidewall.afterLoadMiB = rssMiB(sidecarPid);
    haproxy.afterLoadMiB = rssMiB(haproxyPid);
    sidewall.with1000MiB = await this.holdAndMeasure(this.variant('sidewall'), sidecarPid);
    const tcp = await this.holdAndMeasure(this.variant('haproxy-tcp'), haproxyPid);
    const http = await this.holdAndMeasure(this.variant('haproxy-http'), haproxyPid);
    haproxy.with1000MiB = Math.max(tcp, http);
    sidewall.bulkIdleMiB = await this.holdAndMeasure(this.variant('sidewall'), sidecarPid, '/1m', 3000);
    const tcpBulk = await this.holdAndMeasure(this.variant('haproxy-tcp'), haproxyPid, '/1m', 3000);
    const httpBulk = await this.holdAndMeasure(this.variant('haproxy-http'), haproxyPid, '/1m', 3000);
    this.memory.push({ variant: 'haproxy-tcp (1,000 via tcp frontend)', freshMiB: haproxy.freshMiB, afterLoadMiB: haproxy.afterLoadMiB, with1000MiB: tcp, bulkIdleMiB: tcpBulk });
    this.memory.push({ variant: 'haproxy-http (1,000 via http frontend)', freshMiB: haproxy.freshMiB, afterLoadMiB: haproxy.afterLoadMiB, with1000MiB: http, bulkIdleMiB: httpBulk });
    this.memory.splice(this.memory.indexOf(haproxy), 1);
  }

  /**
   * Node's young generation may grow to 3 × 16 MiB semi-spaces: the same sidecar with smaller
   * ones (--max-semi-space-size), for its memory and what that costs in CPU.
   */
  private async semiSpaceExperiment(): Promise<void> {
    for (const mib of [1, 4]) await this.semiSpaceRun(`--max-semi-space-size=${mib}`);
  }

  private async semiSpaceRun(flag: string): Promise<void> {
    const saved = process.env.NODE_OPTIONS;
    process.env.NODE_OPTIONS = flag; // Topology.start passes our environment to the proxy
    try {
      await this.startSidecar({ ...SIDECAR_VARIANTS.sidewall, name: `sidewall with NODE_OPTIONS=${flag}` });
    } finally {
      if (saved === undefined) delete process.env.NODE_OPTIONS;
      else process.env.NODE_OPTIONS = saved;
    }
    const pid = this.sidecar?.process?.pid as number;
    const row: MemorySample = { variant: `sidewall, NODE_OPTIONS=${flag}`, freshMiB: rssMiB(pid), afterLoadMiB: NaN, with1000MiB: NaN };
    const before = procCpu(pid);
    const load = await this.load(this.variant('sidewall'), 'keepalive');
    const after = procCpu(pid);
    this.sidecar?.records.splice(0);
    if (load) {
      row.keepaliveRps = load.rps;
      row.keepaliveCpuUs = ((after.user + after.sys - before.user - before.sys) * (1e6 / CLK_TCK)) / load.requests;
    }
    await sleep(1000);
    row.afterLoadMiB = rssMiB(pid);
    row.with1000MiB = await this.holdAndMeasure(this.variant('sidewall'), pid);
    this.memory.push(row);
    this.log(`${row.variant}: RSS ${row.freshMiB.toFixed(1)} fresh, ${row.afterLoadMiB.toFixed(1)} after load, ${row.with1000MiB.toFixed(1)} MiB with 1,000; keep-alive ${row.keepaliveRps?.toFixed(0)} req/s at ${row.keepaliveCpuUs?.toFixed(1)} µs/req`);
  }

  /** RSS with 1,000 keep-alive connections that each fetched `path` once, `settleMs` after the last answer. */
  private async holdAndMeasure(v: Variant, pid: number, path = '/small', settleMs = 1000): Promise<number> {
    const t = this.topo;
    this.commands.add(`node dist/perf/bench-tools.js hold TARGET ${path} 1000`);
    const child = t.start(t.podNs, NODE, [TOOLS_JS, 'hold', v.http.host, String(v.http.port), path, '1000'], { uid: v.uid });
    try {
      await waitForLine(child, (l) => l.startsWith('ready'), 120_000, `hold 1,000 connections (${v.name}, ${path})`);
      await new Promise((r) => setTimeout(r, settleMs));
      const rss = rssMiB(pid);
      this.log(`${v.name}: RSS ${rss.toFixed(1)} MiB with 1,000 open connections (each fetched ${path}, ${settleMs} ms at rest)`);
      return rss;
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      this.sidecar?.records.splice(0);
      await sleep(1000);
      if (v.name === 'sidewall') {
        // The client closed all 1,000: the sidecar should hold none of them a second later.
        const open = await this.activeSidecarConnections();
        this.log(`sidewall: ${open} connections still open 1 s after the client closed its 1,000`);
        if (open !== undefined && open > 0) this.findings.add(`1 s after a client closed 1,000 idle keep-alive connections, the sidecar still counted ${open} active connections (/ready activeConnections)`);
      }
    }
  }

  /** activeConnections from the sidecar's /ready detail. */
  private async activeSidecarConnections(): Promise<number | undefined> {
    const ready = await this.topo.execAsync(this.topo.podNs, 'curl', ['-s', '--max-time', '2', 'http://127.0.0.1:15000/ready']);
    try {
      return (JSON.parse(ready.stdout) as { activeConnections?: number }).activeConnections;
    } catch {
      return undefined;
    }
  }

  /**
   * Where the time goes, for the two workloads furthest from their goals: keep-alive requests and a
   * new connection per request. `perf stat` counts syscalls and CPU of HAProxy, the plain Node
   * relay and the sidecar; the sidecar runs once more under `node --cpu-prof` for each workload.
   */
  async profileSidecar(): Promise<void> {
    const t = this.topo;
    await this.stopSidecar();
    const seconds = Math.max(5, this.options.durationS * 2);
    for (const workload of PROFILE_WORKLOADS) {
      // Each workload beside the HAProxy mode its goal names.
      const reference = workload === 'keepalive' ? 'haproxy-http' : 'haproxy-tcp';
      this.syscalls.push(await this.syscallProfile(this.variant(reference), this.haproxy?.pid as number, seconds, workload));
      this.syscalls.push(await this.syscallProfile(this.variant('node-relay'), this.relay?.pid as number, seconds, workload));
    }
    for (const workload of PROFILE_WORKLOADS) {
      const profDir = join(t.dir, `cpu-prof-${workload}`);
      mkdirSync(profDir, { mode: 0o755 });
      chownSync(profDir, PROXY_UID, PROXY_UID);
      const config = t.writeFile('sidecar-profile.yaml', sidecarConfig(SIDECAR_VARIANTS.sidewall, this.subnet));
      this.commands.add(`node --cpu-prof --cpu-prof-dir DIR bin/sidewall.js proxy --config sidecar.yaml   # in the pod namespace as uid 1337`);
      const proc = t.start(t.podNs, NODE, ['--cpu-prof', '--cpu-prof-dir', profDir, CLI, 'proxy', '--config', config], { uid: PROXY_UID, env: { POD_NAME: 'app-0', POD_NAMESPACE: 'bench' } });
      proc.stdout?.resume(); // flow records: consumed and dropped, as a log collector would
      let stderr = '';
      proc.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
      const exited = new Promise<number | null>((r) => proc.once('exit', r));
      let requests = 0;
      try {
        await this.waitForHttp(t.podNs, 'http://127.0.0.1:15000/ready', 0, 'profiled sidecar').catch((err: Error) => {
          throw new Error(`${err.message}; exit ${proc.exitCode}; stderr: ${stderr.slice(-1000)}`);
        });
        const pid = proc.pid as number;
        if (processName(pid) !== 'node') throw new Error(`profiled sidecar pid ${pid} is ${processName(pid)}`);
        this.log(`profiling the sidecar (pid ${pid}) for ${seconds} s of ${workload} load`);
        const sys = await this.syscallProfile({ ...this.variant('sidewall'), pid: () => pid }, pid, seconds, workload);
        this.syscalls.push(sys);
        requests = sys.requests;
      } finally {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
      if (file === undefined) {
        this.findings.add(`no .cpuprofile was written for the ${workload} profile (the sidecar did not exit on SIGTERM within 10 s?); stderr: ${stderr.slice(-400)}`);
        continue;
      }
      // Kept beside the raw samples for DevTools; the namespace folder goes at the end.
      const keep = `/tmp/sidewall-bench-${this.startedAt.replace(/[:.]/g, '-')}-${workload}.cpuprofile`;
      copyFileSync(join(profDir, file), keep);
      this.profiles.push({ workload, requests, file: keep, summary: summariseCpuProfile(join(profDir, file)) });
    }
  }

  /** Load for `seconds` while `perf stat` counts the proxy's syscalls and CPU. */
  private async syscallProfile(v: Variant, pid: number, seconds: number, workload: ProfileWorkload): Promise<SyscallProfile> {
    const names = ['read', 'readv', 'recvfrom', 'recvmsg', 'write', 'writev', 'sendto', 'sendmsg', 'epoll_wait', 'epoll_pwait', 'epoll_ctl', 'accept4', 'connect', 'close', 'shutdown', 'getsockopt', 'setsockopt', 'futex', 'mprotect', 'madvise', 'socket', 'getsockname', 'getpeername', 'splice'];
    const available = names.filter((n) => existsSync(`/sys/kernel/tracing/events/syscalls/sys_enter_${n}`));
    const events = ['task-clock', 'context-switches', 'raw_syscalls:sys_enter', ...available.map((n) => `syscalls:sys_enter_${n}`)];
    const perfSeconds = Math.max(1, seconds - 1.5);
    this.commands.add(`perf stat -x, -e ${events.slice(0, 4).join(',')},... -p PID -- sleep S`);
    const perfOut = new Promise<string>((resolve) => {
      const child = spawn('perf', ['stat', '-x', ',', '-e', events.join(','), '-p', String(pid), '--', 'sleep', String(perfSeconds)], { stdio: ['ignore', 'ignore', 'pipe'] });
      this.extraChildren.add(child);
      let err = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      child.on('error', () => resolve(''));
      child.on('close', () => {
        this.extraChildren.delete(child);
        resolve(err);
      });
    });
    const before = procCpu(pid);
    const threadsBefore = threadCpu(pid);
    const started = Date.now();
    // The load runs a little longer than perf: wrk's ramp and tail stay outside the counted window.
    const shape = { keepalive: ['-c50'], connclose: ['-c10', '-H', 'Connection: close'], mib: ['-c4'] }[workload];
    const path = workload === 'mib' ? '/1m' : '/small';
    const wrk = this.topo.execAsync(this.topo.podNs, 'wrk', ['-t1', ...shape, `-d${seconds}s`, '--latency', `http://${v.http.host}:${v.http.port}${path}`], { uid: v.uid });
    await new Promise((r) => setTimeout(r, 700));
    const perfBefore = procCpu(pid);
    const text = await perfOut;
    const perfAfter = procCpu(pid);
    const perfWindow = (Date.now() - started) / 1000;
    const load = parseWrk((await wrk).stdout);
    const after = procCpu(pid);
    const threadsAfter = threadCpu(pid);
    const counts = new Map<string, number>();
    for (const line of text.split('\n')) {
      const [value, , event] = line.split(',');
      if (event !== undefined && value !== undefined && /^[\d.]+$/.test(value)) counts.set(event, Number(value));
    }
    // Requests inside perf's window, estimated from the proxy's CPU share of the run.
    const totalTicks = after.user + after.sys - before.user - before.sys;
    const windowTicks = perfAfter.user + perfAfter.sys - perfBefore.user - perfBefore.sys;
    const requestsInWindow = totalTicks > 0 ? (load.requests * windowTicks) / totalTicks : load.requests * (perfSeconds / seconds);
    const per = (n: number | undefined): number => (n === undefined ? NaN : n / requestsInWindow);
    const usPerTick = 1e6 / CLK_TCK;
    const profile: SyscallProfile = {
      variant: v.name,
      workload,
      requests: load.requests,
      seconds: perfWindow,
      taskClockUsPerRequest: per((counts.get('task-clock') ?? NaN) * 1000), // task-clock is in ms
      contextSwitchesPerRequest: per(counts.get('context-switches')),
      syscallsPerRequest: per(counts.get('raw_syscalls:sys_enter')),
      bySyscall: available
        .map((n) => ({ name: n, perRequest: per(counts.get(`syscalls:sys_enter_${n}`)) }))
        .filter((s) => s.perRequest > 0.005)
        .sort((a, b) => b.perRequest - a.perRequest),
      userUsPerRequest: ((after.user - before.user) * usPerTick) / load.requests,
      sysUsPerRequest: ((after.sys - before.sys) * usPerTick) / load.requests,
      byThread: [...threadsAfter]
        .map(([thread, ticks]) => ({ thread, usPerRequest: ((ticks - (threadsBefore.get(thread) ?? 0)) * usPerTick) / load.requests }))
        .filter((t) => t.usPerRequest > 0)
        .sort((a, b) => b.usPerRequest - a.usPerRequest),
    };
    this.log(`${workload} ${v.name}: ${profile.syscallsPerRequest.toFixed(2)} syscalls/req, user ${profile.userUsPerRequest.toFixed(1)} µs + sys ${profile.sysUsPerRequest.toFixed(1)} µs per request (${load.rps.toFixed(0)} req/s)`);
    return profile;
  }

  async tearDown(): Promise<void> {
    for (const child of this.extraChildren) child.kill('SIGKILL');
    this.extraChildren.clear();
    try {
      if (this.sidecar) await Promise.race([this.sidecar.stop('SIGKILL'), sleep(2000)]);
    } finally {
      await this.topo.destroy();
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function machine(): Record<string, string> {
  const tool = (cmd: string, args: string[]): string => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    return `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')[0]?.trim() ?? '';
  };
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  return {
    cpus: `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}`,
    kernel: release(),
    node: process.version,
    haproxy: tool('haproxy', ['-v']),
    nginx: tool('nginx', ['-v']),
    wrk: tool('wrk', ['-v']),
    h2load: tool('h2load', ['--version']),
    'load average at start': load,
  };
}

async function main(): Promise<number> {
  let options: BenchOptions;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: needs root (network namespaces, iptables)\n');
    return 1;
  }
  // The bench measures this tree's proxy as a node process (its pid's CPU, --cpu-prof): the test
  // harness would otherwise run the image under podman when one is built.
  process.env.SIDEWALL_E2E_RUNTIME ??= 'tree';
  const started = Date.now();
  const startedAt = new Date().toISOString();
  const host = machine();
  const bench = new Bench(options, startedAt);
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`bench: ${signal}, cleaning up\n`);
    void bench.tearDown().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // A closed terminal or pipe must not kill the bench before it cleans up.
  process.stderr.on('error', () => undefined);
  process.stdout.on('error', () => undefined);
  process.once('uncaughtException', (err) => {
    process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
    if (!interrupted) {
      interrupted = true;
      void bench.tearDown().finally(() => process.exit(1));
    }
  });
  try {
    await bench.setUp();
    await bench.rounds();
    if (options.profile) await bench.profileSidecar();
  } finally {
    if (!interrupted) await bench.tearDown();
  }
  const run: BenchRun = {
    options,
    machine: host,
    samples: bench.samples,
    memory: bench.memory,
    pacedRate: bench.pacedRate,
    dnsNote: bench.dnsNote,
    profiles: bench.profiles,
    syscalls: bench.syscalls,
    commands: [...bench.commands],
    findings: [...bench.findings],
    startedAt,
    elapsedS: (Date.now() - started) / 1000,
  };
  const rawPath = `/tmp/sidewall-bench-${startedAt.replace(/[:.]/g, '-')}.json`;
  writeFileSync(rawPath, JSON.stringify(run, null, 1));
  writeResults(run, options.output, rawPath);
  process.stderr.write(`bench: wrote ${options.output} (raw samples: ${rawPath}) in ${run.elapsedS.toFixed(0)} s\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
