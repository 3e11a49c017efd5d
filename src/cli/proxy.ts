// `sidewall proxy --config FILE`: the sidecar. Wires the pieces together; each lives in its own
// folder (config: settings and rules, net: listeners and relay, enforcement: the L7 firewall,
// flows: records, admin: port 15000).
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { createAppProbeHandler } from '../admin/app-probes.js';
import { AdminAccess } from '../admin/access.js';
import { AdminServer } from '../admin/server.js';
import { ConfigError, loadConfig, PolicyStore, readPodInfo, tunnelModeFor, type PodInfo, type SidecarConfig } from '../config/index.js';
import { formatIssue } from '../policy/index.js';
import { ConnectionGate } from '../enforcement/gate.js';
import { requestFacts } from '../enforcement/request-facts.js';
import type { ConnectionFacts } from '../enforcement/types.js';
import { createFlowPipeline, handleObserveStream, type FlowPipeline } from '../flows/index.js';
import { WorkloadDirectory } from '../identity/workload-directory.js';
import type { IdentityClient } from '../identity/identity-client.js';
import { metrics, metricsText } from '../metrics/index.js';
import { DnsUdpProxy, resolverFromResolvConf } from '../net/dns-udp-proxy.js';
import { ProxyServer } from '../net/proxy-server.js';
import { markLibraryDials } from '../net/socket-mark.js';
import { setReadBufferBytes } from '../net/connection.js';
import { deriveMemoryLimits, FD_RESERVE, readCgroupMemoryLimit, readFdLimit } from '../net/memory-limits.js';
import { alertRecord, connectionRecord, dlpAlertRecord, requestRecord } from '../sidecar/records.js';
import { DEFAULT_DLP, DlpEngine } from '../content/dlp/index.js';
import { NonTcpGuard } from '../sidecar/non-tcp-guard.js';
import { createTunnelDetection } from '../tunnels/index.js';
import { Learner } from '../learn/learner.js';
import { CaptureStore } from '../capture/store.js';
import { collectStartupGarbage } from './startup-gc.js';

const HELP = `usage: sidewall proxy [--config FILE]

Runs the sidecar: outbound listener (15001), inbound listener (15006), admin port (15000).
Flow records go to stdout as JSON lines; logs go to stderr. Exits non-zero with a one-line reason
on a bad config or bad rules. SIGTERM drains open connections, then exits.
`;

function fail(message: string): number {
  // One line, whatever the parser said: this is what `kubectl logs` shows of a crash loop.
  process.stderr.write(`sidewall proxy: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
  return 1;
}

/**
 * Where the admin port listens: loopback (the pod's containers, `sidewall observe`) and the pod's
 * own addresses (the kubelet's probes, Prometheus) — POD_IPS/POD_IP from the downward API, else
 * every address of the pod's interfaces except IPv6 link-local. Not 0.0.0.0: nothing else.
 */
export function adminAddresses(local: string[], env: NodeJS.ProcessEnv = process.env): string[] {
  const fromEnv = (env.POD_IPS ?? env.POD_IP ?? '').split(',').map((ip) => ip.trim()).filter((ip) => ip !== '');
  const pod = fromEnv.length > 0 ? fromEnv : local.filter((ip) => !ip.startsWith('127.') && ip !== '::1' && !ip.toLowerCase().startsWith('fe80:'));
  const hasV6 = local.some((ip) => ip.includes(':'));
  return [...new Set(['127.0.0.1', ...(hasV6 ? ['::1'] : []), ...pod])];
}

export async function run(args: string[]): Promise<number> {
  let values: { config?: string; help?: boolean };
  try {
    ({ values } = parseArgs({ args, options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true }));
  } catch (err) {
    return fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  let config: SidecarConfig;
  let store: PolicyStore;
  let podInfo: PodInfo = { annotations: {}, labels: {} };
  try {
    config = loadConfig(values.config);
    if (config.podInfo !== undefined) podInfo = readPodInfo(config.podInfo);
    store = await PolicyStore.open(config, config.file);
  } catch (err) {
    if (err instanceof ConfigError || (err instanceof Error && 'code' in err)) return fail(err.message);
    throw err;
  }
  const log = pino({ name: 'sidewall' }, pino.destination({ fd: 2, sync: false }));
  const tunables = config.proxy;
  // Before any client library dials: the collector and controller connections are the proxy's own.
  markLibraryDials(tunables.socketMark);
  const podName = process.env.POD_NAME ?? podInfo.name ?? hostname();
  const podNamespace = process.env.POD_NAMESPACE ?? podInfo.namespace ?? 'default';
  // Learning mode and drift alerts: a flow sink reading the mode in force for each record.
  const learner = new Learner({
    mode: () => store.current().mode,
    stateFile: config.learn.stateFile,
    limits: { maxServices: config.learn.maxServices, maxPaths: config.learn.maxPaths, maxSiblings: config.learn.maxSiblings },
    saveIntervalMs: config.learn.saveIntervalMs,
    logger: log,
  });
  const flows: FlowPipeline = createFlowPipeline({
    pod: { namespace: podNamespace, name: podName, ...(process.env.POD_IP ? { ip: process.env.POD_IP } : {}), ...(Object.keys(podInfo.labels).length ? { labels: podInfo.labels } : {}) },
    stdout: config.export.stdout,
    ...(config.export.otlp ? { otlp: config.export.otlp } : {}),
    interimIntervalMs: tunables.flowIntervalMs,
    logger: log,
    sinks: [learner],
  });
  learner.bindEmitter((draft) => flows.emit(draft));
  metrics.policyReloads.inc({ result: 'success' });
  store.on('reload', (policy) => {
    metrics.policyReloads.inc({ result: 'success' });
    log.info({ policy: policy.hash, rules: policy.ruleCount, mode: policy.mode }, 'rules reloaded');
  });
  store.on('reload-failed', (issues, source) => {
    metrics.policyReloads.inc({ result: 'failure' });
    log.error({ source, issues: issues.map(formatIssue), keeping: store.current().hash }, 'rules rejected; keeping the last good rules');
  });

  const workloads = new WorkloadDirectory(config.identities, config.services);
  const policy = () => store.current();
  // CONNECT and Upgrades that a rule allows by name (not by the default action) are declared, not tunnels.
  const isExpected = (facts: ConnectionFacts, what: { kind: 'connect' | 'upgrade'; target: string }): boolean => {
    const http = what.kind === 'connect' ? { method: 'CONNECT', path: what.target } : { method: 'GET', path: '/', headers: { upgrade: what.target } };
    const d = store.current().decide(requestFacts(facts, 'http', { http }));
    return d.action === 'allow' && d.tier !== 'default';
  };
  const tunnels = config.tunnels.default === 'off' && Object.values(config.tunnels.overrides).every((m) => m === 'off') ? null : createTunnelDetection({ ports: config.ports, isExpected, namespace: podNamespace });
  // `tunnels:` is looked up by destination port (`"5432": block`), then the finding's kind
  // (`ssh: block`), then the connection's protocol (`dns: off`), then `default`.
  const tunnelMode = (kind: string, protocol: string, port: number) => config.tunnels.overrides[String(port)] ?? config.tunnels.overrides[kind] ?? tunnelModeFor(config.tunnels, protocol);
  const gate = new ConnectionGate(policy, workloads, config.ports, tunnels, tunnelMode, {
    onParseError: config.onParseError,
    http: config.http,
    // Always there (cheap): rules may name sensors even when the config has no `dlp:`.
    dlp: new DlpEngine(config.dlp ?? { ...DEFAULT_DLP, sensors: [], patterns: [] }),
    countParserError: (protocol, code) => metrics.parserErrors.inc({ protocol, code }),
  });
  // Connection limits and buffer sizes from the memory the container may use, so that no traffic
  // pattern takes the process past it (README: Robustness).
  const limits = deriveMemoryLimits(
    { ...(tunables.memoryLimitBytes > 0 ? { memoryLimitBytes: tunables.memoryLimitBytes } : {}), maxConnections: tunables.maxConnections },
    readCgroupMemoryLimit(),
    process.memoryUsage.rss(),
    readFdLimit(),
  );
  setReadBufferBytes(limits.readBufferBytes);
  for (const [name, value] of [
    ['memory_limit_bytes', limits.limitBytes ?? 0],
    ['max_connections', limits.maxConnections],
    ['read_buffer_bytes', limits.readBufferBytes],
    ['held_bytes_total', limits.heldBytesTotal],
    ['write_queue_total', limits.writeQueueTotal],
    ['state_total', limits.stateTotal],
    ['open_files_soft', limits.fdLimit !== null && Number.isFinite(limits.fdLimit.soft) ? limits.fdLimit.soft : 0],
  ] as const) metrics.limits.set({ limit: name }, value);
  // Which limit bounds the connection count, and why, in the operator's terms.
  const fd = limits.fdLimit;
  const why =
    limits.maxConnectionsBy === 'file descriptors' && fd !== null
      ? `open-files soft limit ${fd.soft} (hard ${fd.hard}): 2 descriptors per proxied connection after ${FD_RESERVE} reserved${fd.soft < fd.hard ? '; raise the soft limit (ulimit -n) for more' : ''}`
      : limits.maxConnectionsBy === 'memory'
        ? `memory limit ${limits.limitBytes} bytes (${limits.source}) less start-up RSS and headroom, half of it for connections`
        : limits.maxConnectionsBy === 'proxy.maxConnections'
          ? 'proxy.maxConnections (20000 unless configured) is below what memory and open files allow'
          : 'no memory or open-files limit found: the default';
  log.info({ limits, maxConnectionsWhy: why, headTimeoutMs: tunables.headTimeoutMs, minHeadBytesPerSecond: tunables.minHeadBytesPerSecond }, `limits derived from the memory and open-files limits: maxConnections ${limits.maxConnections} (${why})`);
  // Packet captures: the relay's tap (src/capture), kept only while some trigger could want it.
  const captures = new CaptureStore(config.capture, { get: (flowId) => proxy.connection(flowId), all: () => proxy.openConnections() }, log);
  captures.setRuleCaptures(store.current().hasCaptureRules === true);
  store.on('reload', (p) => captures.setRuleCaptures(p.hasCaptureRules === true));
  const proxy = new ProxyServer(
    {
      outboundPort: tunables.outboundPort,
      inboundPort: tunables.inboundPort,
      dnsPort: tunables.dnsPort,
      connectTimeoutMs: tunables.connectTimeoutMs,
      idleTimeoutMs: tunables.idleTimeoutMs,
      detectTimeoutMs: tunables.detectTimeoutMs,
      maxConnections: limits.maxConnections,
      statePerConnection: limits.statePerConnection,
      stateTotal: limits.stateTotal,
      ipv6: true,
      socketMark: tunables.socketMark,
      adminPort: tunables.adminPort,
      heldBytesPerConnection: limits.heldBytesPerConnection,
      heldBytesTotal: limits.heldBytesTotal,
      writeQueueTotal: limits.writeQueueTotal,
      headTimeoutMs: tunables.headTimeoutMs,
      minHeadBytesPerSecond: tunables.minHeadBytesPerSecond,
      pressureBytes: limits.pressureBytes,
      onShed: (reason) => metrics.connectionsShed.inc({ reason }),
    },
    {
      onOpen(conn) {
        metrics.connectionsAccepted.inc({ direction: conn.direction });
        metrics.activeConnections.inc({ direction: conn.direction });
        captures.opened(conn);
        const l4 = conn.admission?.l4;
        if (l4 !== undefined && l4 !== 'needs-l7') captures.decided(conn, l4);
        // Long connections get periodic records (one pipeline timer for all of them).
        conn.tracking = flows.trackConnection(conn.flowId, () => {
          const snap = conn.snapshot();
          return connectionRecord(snap, snap.facts, snap.l4, conn.inspection);
        });
      },
      onRequest(conn, outcome) {
        captures.decided(conn, outcome.decision);
        if (conn.admission) flows.emit(requestRecord(conn.flowId, conn.admission.facts, outcome));
      },
      onDlp(conn, alert) {
        metrics.dlpHits.inc({ sensor: alert.hit.sensor, where: alert.hit.where, outcome: alert.blocked ? 'blocked' : alert.decision.verdict === 'would-deny' ? 'would-block' : 'alert' });
        // capture.onAlert: the connection that raised it is captured, and the alert names the capture.
        const capture = captures.alerted(conn);
        if (conn.admission) flows.emit(dlpAlertRecord(conn.flowId, conn.admission.facts, alert, capture === undefined ? undefined : { id: capture, gap: conn.tap?.gapOf(capture) }));
      },
      onAlert(conn, finding, blocked) {
        const capture = captures.alerted(conn);
        const ref = capture === undefined ? undefined : { id: capture, gap: conn.tap?.gapOf(capture) };
        if (conn.admission) flows.emit(alertRecord(conn.flowId, conn.admission.facts, conn.inspection?.protocol ?? 'tcp', finding, blocked, store.current().hash, ref));
      },
      onDecision(conn, decision) {
        captures.decided(conn, decision);
      },
      onInternalError(conn, err) {
        log.error({ flowId: conn.flowId, err }, 'L7 filter failed; connection reset');
      },
      onClose(summary, filter) {
        metrics.activeConnections.dec({ direction: summary.direction });
        // The record names the connection's own capture (alert, rule) before on-demand ones.
        const own = captures.ownCaptureId(summary.flowId);
        if (own !== undefined && summary.captures !== undefined) summary.captures = [own, ...summary.captures.filter((id) => id !== own)];
        flows.emit(connectionRecord(summary, summary.facts, summary.l4, filter));
      },
    },
    gate,
  );
  const self = { namespace: podNamespace, pod: podName, labels: podInfo.labels };
  workloads.setSelf(proxy.localAddresses(), self);
  // Cluster identities from the controller's stream (issue 8); the last map stays while it is away.
  // Loaded only when configured: grpc-js is megabytes of memory a sidecar without it never needs.
  const identityModules = config.identity === undefined ? undefined : await Promise.all([import('../identity/identity-client.js'), import('../identity/identity-metrics.js')]);
  const identity: IdentityClient | undefined =
    config.identity === undefined || identityModules === undefined
      ? undefined
      : new identityModules[0].IdentityClient({
          address: config.identity.controller,
          directory: workloads,
          client: `${podNamespace}/${podName}`,
          log,
          ...(config.identity.tokenFile !== undefined ? { tokenFile: config.identity.tokenFile } : {}),
          ...(config.identity.caFile !== undefined ? { caFile: config.identity.caFile } : {}),
        });
  if (identity !== undefined && identityModules !== undefined) {
    identityModules[1].exposeIdentityMetrics(identity);
    identity.start();
  }

  // DNS over UDP: to the resolver the pod was configured with (SIDEWALL_DNS_RESOLVER overrides).
  const resolver = process.env.SIDEWALL_DNS_RESOLVER ?? resolverFromResolvConf();
  const dns =
    resolver === undefined
      ? undefined
      : new DnsUdpProxy({
          port: tunables.dnsPort,
          resolver,
          policy,
          identify: (ip) => workloads.lookup(ip),
          identityStale: () => workloads.stale,
          isLocal: (ip) => proxy.isLocal(ip),
          monitor: tunnels?.dns ?? null,
          tunnelMode,
          nextFlowId: () => proxy.nextFlowId(),
          onError: (err) => log.error({ err }, 'DNS datagram failed'),
          onMalformed: (err) => metrics.parserErrors.inc({ protocol: 'dns', code: (err as { code?: string }).code ?? 'ERR_MALFORMED' }),
          onRejectedAnswer: (reason) => metrics.dnsAnswersRejected.inc({ reason }),
          onQuery: (q) => flows.emit({ ...requestRecord(q.flowId, q.facts, { protocol: 'dns', l7: q.l7, decision: q.decision, durationMs: q.durationMs, ...(q.reason ? { reason: q.reason } : {}) }), ...(q.capture !== undefined ? { capture: q.capture } : {}) }),
          onAlert: (flowId, facts, finding, blocked) => {
            // capture.onAlert: the query that raised it, with its answer, once that is in.
            const capture = captures.alertedDatagrams(flowId);
            flows.emit(alertRecord(flowId, facts, 'dns', finding, blocked, store.current().hash, capture === undefined ? undefined : { id: capture }));
          },
          // Packet captures of DNS over UDP: the query and the answer as UDP datagrams (src/capture/udp-frames.ts).
          keepDatagrams: () => captures.wantsTaps,
          onDatagrams: (q) => captures.datagramFlow({ flowId: q.flowId, client: q.facts.src, server: q.facts.dst, ...(q.decision !== undefined ? { decision: q.decision } : {}), datagrams: q.datagrams }),
          socketMark: tunables.socketMark,
        });
  if (dns === undefined) log.warn('no nameserver in /etc/resolv.conf and no SIDEWALL_DNS_RESOLVER: the DNS listener (UDP) is off');

  // Non-TCP traffic (UDP other than DNS, ICMP, other IP protocols): the first packet of each flow
  // comes over NFQUEUE (needs CAP_NET_ADMIN in the pod's network namespace). Unbound, the kernel
  // drops that traffic, and the sidecar stays unready saying why.
  const nonTcp = new NonTcpGuard({
    queue: tunables.nfqueue,
    maxLen: tunables.nfqueueMaxLen,
    policy,
    isLocal: (ip) => proxy.isLocal(ip),
    identify: (ip) => workloads.lookup(ip),
    describe: (ip, port, withService) => workloads.describe(ip, port, withService),
    nextFlowId: () => proxy.nextFlowId(),
    emit: (draft) => flows.emit(draft),
    log,
    icmpTunnels: tunnels?.icmp ?? null,
    tunnelMode: (kind) => tunnelMode(kind, 'icmp', 0),
    // Packet captures of non-TCP flows: the first packet, as the guard got it.
    wantsPackets: () => captures.wantsTaps,
    capture: (packet) => captures.firstPacket(packet),
  });
  store.on('reload', () => nonTcp.onPolicyChange());

  let ready = false;
  // Why the sidecar is not ready (shown in /ready's JSON and logged): it does not own its listeners.
  let notReady: string | undefined = 'starting';
  const admin = new AdminServer({
    readiness: () => {
      const guard = nonTcp.status();
      const isReady = ready && guard.bound;
      // Not ready: the listeners are not ours yet, or the non-TCP guard has no queue.
      const reason = notReady ?? (guard.bound ? undefined : guard.reason);
      return { ready: isReady, detail: { ...(reason !== undefined && !isReady ? { reason } : {}), activeConnections: proxy.activeConnections, policy: store.current().hash, mode: store.current().mode, nonTcp: guard, ...(identity ? { identity: identity.status() } : {}) } };
    },
    metrics: metricsText,
    connections: () =>
      [...proxy.openConnections()].map((conn) => {
        const snap = conn.snapshot();
        return { ...connectionRecord(snap, snap.facts, snap.l4, conn.inspection), reason: 'open', sockets: conn.debugState() };
      }),
    appProbe: createAppProbeHandler(process.env.SIDEWALL_APP_PROBES),
    learnModel: () => learner.report(),
    captures: {
      list: () => captures.list(),
      start: (request) => captures.start(request),
      stop: (id) => captures.stop(id),
      file: (id) => captures.path(id),
    },
    grpc: handleObserveStream,
    access: new AdminAccess({ ownUid: process.getuid?.() ?? 0, isLocal: (ip) => proxy.isLocal(ip), ...(config.admin.tokenFile !== undefined ? { tokenFile: config.admin.tokenFile } : {}) }),
    socketMark: tunables.socketMark,
  });
  try {
    await admin.listen(tunables.adminPort, adminAddresses(proxy.localAddresses()));
  } catch (err) {
    // Without the admin port nobody could read why we are not ready: exit, and say it.
    return fail(`cannot listen on the admin port ${tunables.adminPort}: ${(err as Error).message}`);
  }
  const guard = nonTcp.start();
  if (!guard.bound) log.error({ queue: guard.queue, reason: guard.reason }, 'non-TCP guard not bound: the pod stays unready');
  if (admin.markError !== undefined) log.error({ err: admin.markError.message }, 'cannot mark the admin port: its connections are dropped by the pod\'s listener guard');
  // All listeners or none (ProxyServer and DnsUdpProxy close what they opened on a failure); until
  // then /ready answers 503 with the reason, and we try again: the port may be freed.
  let stopping = false;
  let retry: NodeJS.Timeout | undefined;
  const own = async (): Promise<void> => {
    try {
      await proxy.listen();
      try {
        await dns?.listen(true);
      } catch (err) {
        await proxy.closeListeners();
        throw err;
      }
      notReady = undefined;
      ready = true;
      log.info({ outbound: tunables.outboundPort, inbound: tunables.inboundPort, admin: tunables.adminPort, mark: `0x${tunables.socketMark.toString(16)}`, policy: store.current().hash, mode: store.current().mode }, 'sidewall proxy ready');
      // What only start-up needed leaves the heap now rather than at the first mark-compact under traffic.
      setImmediate(collectStartupGarbage);
    } catch (err) {
      notReady = `cannot own the listeners: ${(err as Error).message}`;
      log.error({ reason: notReady }, 'not ready: retrying in 2 s');
      if (!stopping) retry = setTimeout(() => void own(), 2000);
    }
  };
  await own();
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      clearTimeout(retry);
      ready = false;
      log.info({ signal, activeConnections: proxy.activeConnections }, 'draining');
      store.close();
      dns?.close();
      nonTcp.close();
      identity?.close();
      void proxy
        .drain(tunables.drainTimeoutMs)
        .then(() => captures.close())
        .then(() => flows.close())
        .then(() => admin.close())
        .then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  // Every accepted connection has had its final record by now (the harness checks the count).
  log.info({ accepted: proxy.accepted }, 'stopped');
  await new Promise<void>((resolve) => log.flush(() => resolve()));
  return 0;
}
