// The webhook's HTTPS server. The API server only talks TLS to webhooks; the certificate and key
// come from files (a Secret volume) and are re-read when they change, so cert-manager or the
// chart can rotate them without a restart. A rotation swaps the secure context for new
// connections only; connections already open finish with the certificate they started with.
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createSecureContext } from 'node:tls';
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import {
  AdmissionBodyTooLargeError,
  AdmissionMediaTypeError,
  AdmissionRequestError,
  parseAdmissionReview,
  reviewResponse,
} from './admission-review.js';
import { handleMutation, handleValidation } from './handlers.js';
import type { InjectorSettings } from './settings.js';
import type { RuleSourceChecker } from './validate.js';
import type { AlertSink, WebhookAlert } from './alerts.js';
import { createWebhookMetrics, type WebhookMetrics } from './metrics.js';

export interface WebhookServerOptions {
  tlsCertFile: string;
  tlsKeyFile: string;
  port: number;
  host?: string;
  settings: InjectorSettings;
  checkRules: RuleSourceChecker;
  alerts: AlertSink;
  logger: Logger;
  /** Largest request body accepted; the API server's own limit for an object is ~3 MiB. */
  maxBodyBytes?: number;
  /** How often the certificate files are checked (in addition to file-system events). */
  certificatePollMs?: number;
  /** Counters served on GET /metrics; absent: a registry of the server's own. */
  metrics?: WebhookMetrics;
}

export class CertificateLoadError extends Error {
  readonly code = 'SIDEWALL_WEBHOOK_CERTIFICATE';
  constructor(readonly certFile: string, readonly keyFile: string, detail: string) {
    super(`cannot use TLS certificate ${certFile} with key ${keyFile}: ${detail}`);
    this.name = 'CertificateLoadError';
  }
}

interface KeyPair { cert: Buffer; key: Buffer; fingerprint: string }

function fileStamp(file: string): string {
  const stat = statSync(file);
  return `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
}

function loadKeyPair(certFile: string, keyFile: string): KeyPair {
  let cert: Buffer;
  let key: Buffer;
  try {
    cert = readFileSync(certFile);
    key = readFileSync(keyFile);
  } catch (err) {
    throw new CertificateLoadError(certFile, keyFile, (err as Error).message);
  }
  try {
    // Fails on a key that does not belong to the certificate, e.g. mid-rotation.
    createSecureContext({ cert, key });
  } catch (err) {
    throw new CertificateLoadError(certFile, keyFile, (err as Error).message);
  }
  return { cert, key, fingerprint: `${fileStamp(certFile)}|${fileStamp(keyFile)}` };
}

const JSON_TYPES = /^application\/(json|[a-z0-9.+-]*\+json)\s*(;.*)?$/i;

export class WebhookServer extends EventEmitter {
  private readonly server: Server;
  private keyPair: KeyPair;
  private readonly watchers: FSWatcher[] = [];
  private pollTimer: NodeJS.Timeout | undefined;
  private readonly maxBodyBytes: number;
  private readonly metrics: WebhookMetrics;
  /** The configured sink, counting each alert record by kind. */
  private readonly alerts: AlertSink;

  private constructor(private readonly options: WebhookServerOptions) {
    super();
    this.maxBodyBytes = options.maxBodyBytes ?? 4 * 1024 * 1024;
    this.metrics = options.metrics ?? createWebhookMetrics();
    this.alerts = (alert: WebhookAlert): void => {
      this.metrics.alerts.inc({ kind: 'kind' in alert ? alert.kind : 'policy-annotation-change' });
      options.alerts(alert);
    };
    this.keyPair = loadKeyPair(options.tlsCertFile, options.tlsKeyFile);
    this.server = createServer({ cert: this.keyPair.cert, key: this.keyPair.key }, (req, res) => {
      this.route(req, res).catch((err: unknown) => this.fail(res, 500, 'SIDEWALL_WEBHOOK_INTERNAL', (err as Error).message));
    });
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 30_000;
    this.server.on('tlsClientError', (err) => options.logger.debug({ err: err.message }, 'TLS handshake failed'));
  }

  static async start(options: WebhookServerOptions): Promise<WebhookServer> {
    const webhook = new WebhookServer(options);
    await new Promise<void>((resolve, reject) => {
      webhook.server.once('error', reject);
      webhook.server.listen(options.port, options.host ?? '0.0.0.0', () => {
        webhook.server.off('error', reject);
        resolve();
      });
    });
    webhook.watchCertificate();
    return webhook;
  }

  get port(): number {
    const address = this.server.address();
    return typeof address === 'object' && address !== null ? address.port : this.options.port;
  }

  /** Re-reads the certificate files; returns true when a new pair was installed. */
  reloadCertificate(): boolean {
    let next: KeyPair;
    try {
      const stamp = `${fileStamp(this.options.tlsCertFile)}|${fileStamp(this.options.tlsKeyFile)}`;
      if (stamp === this.keyPair.fingerprint) return false;
      next = loadKeyPair(this.options.tlsCertFile, this.options.tlsKeyFile);
    } catch (err) {
      // Half-written or mismatched files during a rotation: keep serving the previous pair.
      this.options.logger.warn({ err: (err as Error).message }, 'certificate reload failed; keeping the previous certificate');
      return false;
    }
    this.server.setSecureContext({ cert: next.cert, key: next.key });
    this.keyPair = next;
    this.options.logger.info({ cert: this.options.tlsCertFile }, 'TLS certificate reloaded');
    this.emit('certificate-reloaded');
    return true;
  }

  private watchCertificate(): void {
    const directories = new Set([dirname(this.options.tlsCertFile), dirname(this.options.tlsKeyFile)]);
    for (const directory of directories) {
      try {
        // Secret volumes swap a `..data` symlink, which shows up as events on the directory.
        const watcher = watch(directory, () => this.reloadCertificate());
        watcher.on('error', () => watcher.close());
        this.watchers.push(watcher);
      } catch {
        // Polling below still catches changes.
      }
    }
    this.pollTimer = setInterval(() => this.reloadCertificate(), this.options.certificatePollMs ?? 5_000);
    this.pollTimer.unref();
  }

  async close(): Promise<void> {
    if (this.pollTimer !== undefined) clearInterval(this.pollTimer);
    for (const watcher of this.watchers) watcher.close();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz' || path === '/readyz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (path === '/metrics' && req.method === 'GET') {
      const text = await this.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': this.metrics.registry.contentType }).end(text);
      return;
    }
    if (path !== '/mutate' && path !== '/validate') {
      this.fail(res, 404, 'SIDEWALL_WEBHOOK_NOT_FOUND', `no such endpoint ${path}; use /mutate, /validate, /healthz or /metrics`);
      return;
    }
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      this.fail(res, 405, 'SIDEWALL_WEBHOOK_METHOD', `${req.method ?? ''} is not allowed on ${path}; the API server POSTs an AdmissionReview`);
      return;
    }
    let body: Buffer;
    try {
      const contentType = req.headers['content-type'];
      if (contentType !== undefined && !JSON_TYPES.test(contentType)) throw new AdmissionMediaTypeError(contentType);
      body = await this.readBody(req);
    } catch (err) {
      if (err instanceof AdmissionRequestError) {
        res.setHeader('connection', 'close');
        this.fail(res, err.httpStatus, err.code, err.message);
        return;
      }
      throw err;
    }
    try {
      const request = parseAdmissionReview(body);
      const log = this.options.logger.child({ uid: request.uid, kind: request.kind.kind, namespace: request.namespace, name: request.name, operation: request.operation });
      if (path === '/mutate') {
        const outcome = handleMutation(request, this.options.settings, this.alerts);
        this.metrics.admissions.inc({ webhook: 'mutate', outcome: outcome.outcome });
        if (outcome.outcome === 'refused') this.metrics.refusals.inc({ webhook: 'mutate', check: 'step-around' });
        log.info({ outcome: outcome.outcome, reason: outcome.reason, warnings: outcome.response.warnings }, 'mutate');
        this.reply(res, outcome.response);
      } else {
        const outcome = handleValidation(request, this.options.settings, this.options.checkRules, this.alerts);
        this.metrics.admissions.inc({ webhook: 'validate', outcome: outcome.response.allowed ? 'allowed' : 'denied' });
        for (const check of outcome.refusedBy) this.metrics.refusals.inc({ webhook: 'validate', check });
        log.info({ allowed: outcome.response.allowed, problems: outcome.problems, user: request.userInfo.username }, 'validate');
        this.reply(res, outcome.response);
      }
    } catch (err) {
      if (err instanceof AdmissionRequestError) {
        this.options.logger.warn({ code: err.code, err: err.message, path }, 'malformed admission request');
        this.fail(res, err.httpStatus, err.code, err.message);
        return;
      }
      throw err;
    }
  }

  private readBody(req: IncomingMessage): Promise<Buffer> {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > this.maxBodyBytes) return Promise.reject(new AdmissionBodyTooLargeError(this.maxBodyBytes));
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const onData = (chunk: Buffer): void => {
        size += chunk.length;
        if (size > this.maxBodyBytes) {
          req.off('data', onData);
          req.resume();
          reject(new AdmissionBodyTooLargeError(this.maxBodyBytes));
          return;
        }
        chunks.push(chunk);
      };
      req.on('data', onData);
      req.once('end', () => resolve(Buffer.concat(chunks, size)));
      req.once('error', reject);
    });
  }

  private reply(res: ServerResponse, response: Parameters<typeof reviewResponse>[0]): void {
    const body = JSON.stringify(reviewResponse(response));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  }

  private fail(res: ServerResponse, status: number, code: string, message: string): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = JSON.stringify({ error: { code, message } });
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  }
}
