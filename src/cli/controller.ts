// `sidewall controller`: the workload identity controller (issue 8). Watches Pods and Namespaces,
// keeps pod IP → {namespace, pod, labels, serviceAccount, node}, and streams it to the sidecars
// over gRPC (proto/sidewall/identity/v1/identity.proto), each sidecar authenticated by its
// projected service-account token (TokenReview). Health on a small HTTP port for the kubelet.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { DEFAULT_AUDIENCE, IdentityController } from '../controller/identity-controller.js';
import { parsePort, UsageError } from './flags.js';

const USAGE = `usage: sidewall controller [--port 15012] [--host ::] [--health-port 15013]
                           [--tls-cert FILE --tls-key FILE] [--auth tokenreview|none]
                           [--audience sidewall-controller] [--kubeconfig FILE] [--log-level info]

Watches Pods and Namespaces and streams pod IP → workload identity to the sidecars (gRPC,
sidewall.identity.v1.IdentityStream on --port; TLS with --tls-cert/--tls-key, else plaintext).
Sidecars authenticate with a projected service-account token for --audience, checked with a
TokenReview (--auth none turns that off). In a pod it uses the pod's service account; elsewhere
--kubeconfig or $KUBECONFIG. GET /healthz (alive) and /readyz (pods listed) on --health-port.
Port 0 for either: one the kernel picks, logged in the 'sidewall controller started' line.
`;

function fail(message: string, code = 1): number {
  process.stderr.write(`sidewall controller: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
  return code;
}

export async function run(args: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args,
      options: {
        port: { type: 'string', default: '15012' },
        host: { type: 'string', default: '::' },
        'health-port': { type: 'string', default: '15013' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        auth: { type: 'string', default: 'tokenreview' },
        audience: { type: 'string', default: DEFAULT_AUDIENCE },
        kubeconfig: { type: 'string' },
        'log-level': { type: 'string', default: 'info' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    return fail(`${(err as Error).message}\n${USAGE}`, 2);
  }
  if (values.help === true) {
    process.stdout.write(USAGE);
    return 0;
  }
  let port: number;
  let healthPort: number;
  try {
    // 0: a port the kernel picks, reported in the 'started' log line (tests; never a collision).
    port = parsePort('--port', String(values.port), 0);
    healthPort = parsePort('--health-port', String(values['health-port']), 0);
    if (values.auth !== 'tokenreview' && values.auth !== 'none') throw new UsageError(`--auth: '${String(values.auth)}' is not tokenreview or none`);
    if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  } catch (err) {
    return fail((err as Error).message, 2);
  }
  const log = pino({ name: 'sidewall-controller', level: String(values['log-level']) }, pino.destination(2));
  let credentials: grpc.ServerCredentials;
  try {
    if (values['tls-cert'] === undefined) {
      credentials = grpc.ServerCredentials.createInsecure();
    } else {
      const certificateFile = String(values['tls-cert']);
      const privateKeyFile = String(values['tls-key']);
      // Read once now so that a bad file is a start-up error, not a silent refusal later.
      readFileSync(certificateFile);
      readFileSync(privateKeyFile);
      // cert-manager and the chart's own CA renew the certificate in place: re-read the files
      // every minute so new handshakes get the new certificate without a restart.
      const provider = new grpc.experimental.FileWatcherCertificateProvider({ certificateFile, privateKeyFile, refreshIntervalMs: Number(process.env.SIDEWALL_TLS_REFRESH_MS ?? 60_000) });
      // grpc-js 1.14 hands its first argument to the credentials as the *identity* provider (the
      // parameter names of the exported function are swapped); null: no client certificates.
      credentials = grpc.experimental.createCertificateProviderServerCredentials(provider, null, false);
    }
  } catch (err) {
    return fail(`cannot read the TLS certificate or key: ${(err as Error).message}`);
  }
  if (values['tls-cert'] === undefined) log.warn('no --tls-cert: the identity stream (and the sidecars\' tokens) travel in plaintext');
  const kubeConfig = new KubeConfig();
  try {
    if (values.kubeconfig !== undefined) kubeConfig.loadFromFile(String(values.kubeconfig));
    else kubeConfig.loadFromDefault();
  } catch (err) {
    return fail(`cannot load the Kubernetes client config: ${(err as Error).message}`);
  }
  if (kubeConfig.getCurrentCluster() === null) return fail('no Kubernetes cluster configured (not in a pod, and no --kubeconfig or $KUBECONFIG)');
  const controller = new IdentityController({ kubeConfig, log, auth: values.auth as 'tokenreview' | 'none', audiences: [String(values.audience)] });
  const host = String(values.host);
  let bound: number;
  try {
    bound = await controller.start(host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`, credentials);
  } catch (err) {
    return fail(`cannot listen on ${host}:${port}: ${(err as Error).message}`);
  }
  const health = createServer((req, res) => {
    const status = controller.status();
    const ok = req.url === '/healthz' || (req.url === '/readyz' && status.synced);
    res.writeHead(req.url === '/healthz' || req.url === '/readyz' ? (ok ? 200 : 503) : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify(status) + '\n');
  });
  await new Promise<void>((resolve, reject) => health.once('error', reject).listen(healthPort, host, () => resolve())).catch((err: Error) => {
    log.error({ err: err.message }, 'cannot listen for health probes');
  });
  const healthAddress = health.address();
  if (healthAddress !== null && typeof healthAddress === 'object') healthPort = healthAddress.port;
  log.info({ port: bound, healthPort, auth: values.auth, tls: values['tls-cert'] !== undefined }, 'sidewall controller started');
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'stopping');
      void controller.close().then(() => health.close(() => resolve()));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  log.flush();
  return 0;
}
