// `sidewall webhook --tls-cert FILE --tls-key FILE [--port 9443] [--settings FILE]`: the admission
// webhook server (HTTPS; /mutate, /validate, /healthz). Logs go to stderr (pino); alert records
// for refused policy-annotation changes go to stdout as JSON lines.
import { parseArgs } from 'node:util';
import pino from 'pino';
import { checkRuleSource } from '../policy/index.js';
import {
  CertificateLoadError,
  InjectorSettingsError,
  WebhookServer,
  createAlertWriter,
  createWebhookMetrics,
  defaultInjectorSettings,
  loadInjectorSettings,
  type InjectorSettings,
} from '../../injector/index.js';

const USAGE = `usage: sidewall webhook --tls-cert FILE --tls-key FILE [--port 9443] [--host 0.0.0.0]
                        [--settings FILE] [--log-level info]

Runs the admission webhook (HTTPS): POST /mutate injects sidewall-init and sidewall-proxy into
pods, POST /validate refuses invalid sidewall annotations and unauthorised policy changes,
GET /healthz answers "ok". The certificate and key are re-read when the files change.
--settings is the injector settings YAML (the chart's ConfigMap); defaults apply without it.
`;

export async function run(args: string[]): Promise<number> {
  let values: { 'tls-cert'?: string; 'tls-key'?: string; port?: string; host?: string; settings?: string; 'log-level'?: string; help?: boolean };
  try {
    values = parseArgs({
      args,
      options: {
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        port: { type: 'string', default: '9443' },
        host: { type: 'string', default: '0.0.0.0' },
        settings: { type: 'string' },
        'log-level': { type: 'string', default: 'info' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    process.stderr.write(`sidewall webhook: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help === true) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values['tls-cert'] === undefined || values['tls-key'] === undefined) {
    process.stderr.write(`sidewall webhook: --tls-cert and --tls-key are required\n${USAGE}`);
    return 2;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    process.stderr.write(`sidewall webhook: --port '${values.port}' is not a port number\n`);
    return 2;
  }
  const logger = pino({ name: 'sidewall-webhook', level: values['log-level'] ?? 'info' }, pino.destination(2));
  let settings: InjectorSettings;
  try {
    settings = values.settings === undefined ? defaultInjectorSettings() : loadInjectorSettings(values.settings);
  } catch (err) {
    if (err instanceof InjectorSettingsError) {
      process.stderr.write(`sidewall webhook: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  let server: WebhookServer;
  try {
    server = await WebhookServer.start({
      tlsCertFile: values['tls-cert'],
      tlsKeyFile: values['tls-key'],
      port,
      host: values.host,
      settings,
      checkRules: checkRuleSource,
      alerts: createAlertWriter(process.stdout),
      logger,
      // The process's own CPU, memory and event-loop lag next to the admission counters.
      metrics: createWebhookMetrics({ processMetrics: true }),
    });
  } catch (err) {
    if (err instanceof CertificateLoadError || (err as NodeJS.ErrnoException).code === 'EADDRINUSE' || (err as NodeJS.ErrnoException).code === 'EACCES') {
      process.stderr.write(`sidewall webhook: ${(err as Error).message}\n`);
      return 1;
    }
    throw err;
  }
  logger.info({ port: server.port, nativeSidecar: settings.nativeSidecar, image: settings.image }, 'admission webhook listening');
  return new Promise<number>((resolve) => {
    const stop = (signal: string): void => {
      logger.info({ signal }, 'shutting down');
      server.close().then(() => resolve(0), () => resolve(1));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
