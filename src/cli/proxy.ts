// `sidewall proxy --config FILE`: the sidecar. Wires the pieces together; each lives in its own
// folder (net: listeners and relay, config: settings and rules, flows: records, admin: port 15000).
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { AdminServer } from '../admin/server.js';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { createFlowPipeline, type FlowPipeline, type FlowRecordDraft } from '../flows/index.js';
import { metrics, metricsText } from '../metrics/index.js';
import type { ConnectionSummary } from '../net/connection.js';
import { ProxyServer } from '../net/proxy-server.js';

const HELP = `usage: sidewall proxy [--config FILE]

Runs the sidecar: outbound listener (15001), inbound listener (15006), admin port (15000).
Flow records go to stdout as JSON lines; logs go to stderr. Exits non-zero with a one-line reason
on a bad config. SIGTERM drains open connections, then exits.
`;

const CLOSE_REASONS: Record<ConnectionSummary['reason'], string> = {
  closed: 'fin',
  'client-reset': 'reset',
  'server-reset': 'reset',
  'connect-refused': 'connect-failed',
  'connect-failed': 'connect-failed',
  'connect-timeout': 'connect-timeout',
  'idle-timeout': 'idle-timeout',
  limit: 'limit',
  loop: 'loop',
  'no-original-dst': 'no-original-dst',
  denied: 'denied',
  drain: 'drain',
};

function connectionRecord(summary: ConnectionSummary): FlowRecordDraft {
  return {
    type: 'connection',
    flowId: summary.flowId,
    direction: summary.direction,
    src: summary.src,
    dst: summary.dst,
    protocol: 'tcp',
    verdict: summary.reason === 'denied' ? 'denied' : 'allowed',
    ruleId: null,
    policy: null,
    bytes: { sent: summary.bytesSent, received: summary.bytesReceived },
    durationMs: Math.round(summary.durationMs * 1000) / 1000,
    reason: summary.error !== undefined && summary.reason !== 'closed' ? `${CLOSE_REASONS[summary.reason]}` : CLOSE_REASONS[summary.reason],
  };
}

// TEMPORARY until src/config lands: the proxy tunables with their defaults.
class ConfigError extends Error {}
interface SidecarConfig {
  export: { stdout: boolean };
  proxy: { outboundPort: number; inboundPort: number; adminPort: number; connectTimeoutMs: number; idleTimeoutMs: number; maxConnections: number; drainTimeoutMs: number };
}
function loadConfig(path: string | undefined): SidecarConfig {
  let raw: { proxy?: Partial<SidecarConfig['proxy']> } = {};
  if (path !== undefined) {
    try {
      raw = (parseYaml(readFileSync(path, 'utf8')) ?? {}) as typeof raw;
    } catch (err) {
      throw new ConfigError(`${path}: ${(err as Error).message}`);
    }
  }
  return {
    export: { stdout: true },
    proxy: { outboundPort: 15001, inboundPort: 15006, adminPort: 15000, connectTimeoutMs: 5000, idleTimeoutMs: 3_600_000, maxConnections: 20000, drainTimeoutMs: 15000, ...raw.proxy },
  };
}

export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  let config: SidecarConfig;
  try {
    config = loadConfig(values.config);
  } catch (err) {
    if (err instanceof ConfigError) {
      // One line, whatever the parser said: this is what `kubectl logs` shows of a crash loop.
      process.stderr.write(`sidewall proxy: ${err.message.replace(/\s*\n\s*/g, ' ')}\n`);
      return 1;
    }
    throw err;
  }
  const log = pino({ name: 'sidewall' }, pino.destination({ fd: 2, sync: false }));
  const tunables = config.proxy;
  const flows: FlowPipeline = createFlowPipeline({
    pod: { namespace: process.env.POD_NAMESPACE ?? 'default', name: process.env.POD_NAME ?? hostname() },
    stdout: config.export.stdout,
    logger: log,
  });
  const proxy = new ProxyServer(
    {
      outboundPort: tunables.outboundPort,
      inboundPort: tunables.inboundPort,
      connectTimeoutMs: tunables.connectTimeoutMs,
      idleTimeoutMs: tunables.idleTimeoutMs,
      maxConnections: tunables.maxConnections,
      ipv6: true,
    },
    {
      onOpen(direction) {
        metrics.activeConnections.inc({ direction });
      },
      onClose(summary) {
        metrics.activeConnections.dec({ direction: summary.direction });
        flows.emit(connectionRecord(summary));
      },
    },
  );
  let ready = false;
  const admin = new AdminServer({
    readiness: () => ({ ready, detail: { activeConnections: proxy.activeConnections } }),
    metrics: metricsText,
  });
  try {
    await proxy.listen();
    await admin.listen(tunables.adminPort, ['0.0.0.0', '::']);
  } catch (err) {
    process.stderr.write(`sidewall proxy: cannot listen: ${(err as Error).message}\n`);
    return 1;
  }
  ready = true;
  log.info({ outbound: tunables.outboundPort, inbound: tunables.inboundPort, admin: tunables.adminPort }, 'sidewall proxy ready');

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      if (!ready) return;
      ready = false;
      log.info({ signal, activeConnections: proxy.activeConnections }, 'draining');
      void proxy
        .drain(tunables.drainTimeoutMs)
        .then(() => flows.close())
        .then(() => admin.close())
        .then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  log.info('stopped');
  log.flush();
  return 0;
}
