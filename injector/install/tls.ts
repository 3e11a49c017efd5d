// Webhook TLS material for `sidewall manifests`: a CA and a serving certificate for the webhook
// Service's DNS names, made with the openssl CLI (the chart uses Helm's genCA/genSignedCert).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface WebhookTls {
  caCert: string;
  tlsCert: string;
  tlsKey: string;
}

export class WebhookTlsError extends Error {
  readonly code = 'SIDEWALL_MANIFESTS_TLS';
  constructor(detail: string) {
    super(
      `cannot make the webhook certificate: ${detail}. Install openssl, or use --cert-manager, ` +
        'or bring your own with --tls-cert FILE --tls-key FILE --tls-ca FILE',
    );
    this.name = 'WebhookTlsError';
  }
}

export function webhookDnsNames(service: string, namespace: string): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
}

export function generateWebhookTls(service: string, namespace: string, days: { ca: number; cert: number }): WebhookTls {
  const dir = mkdtempSync(join(tmpdir(), 'sidewall-manifests-'));
  const run = (args: string[]): void => {
    try {
      execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
      throw new WebhookTlsError(stderr !== undefined && stderr !== '' ? `openssl failed: ${stderr.split('\n')[0]}` : (err as Error).message);
    }
  };
  try {
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    run(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', String(days.ca), '-subj', '/CN=sidewall-webhook-ca',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    run(['req', ...ec, '-keyout', 'tls.key', '-out', 'tls.csr', '-subj', `/CN=${service}.${namespace}.svc`]);
    writeFileSync(join(dir, 'san.ext'), [
      `subjectAltName=${webhookDnsNames(service, namespace).map((name) => `DNS:${name}`).join(',')}`,
      'extendedKeyUsage=serverAuth',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      '',
    ].join('\n'));
    run(['x509', '-req', '-in', 'tls.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'tls.crt', '-days', String(days.cert), '-extfile', 'san.ext']);
    // openssl writes PKCS#8 keys; Node and Go read them as they are.
    return { caCert: readFileSync(join(dir, 'ca.crt'), 'utf8'), tlsCert: readFileSync(join(dir, 'tls.crt'), 'utf8'), tlsKey: readFileSync(join(dir, 'tls.key'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
