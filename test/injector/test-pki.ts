// A throwaway CA and serving certificates for the HTTPS tests, made with the openssl CLI.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  caCert: Buffer;
  /** Issues a new serving cert for localhost/127.0.0.1 signed by the CA; returns its serial (hex). */
  issue(name: string): { certFile: string; keyFile: string; serial: string };
}

function openssl(args: string[], cwd: string): string {
  return execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

export function createTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'sidewall-pki-'));
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=sidewall test CA'], dir);
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:localhost,DNS:sidewall-webhook.sidewall-system.svc,IP:127.0.0.1\n');
  return {
    dir,
    caCert: readFileSync(join(dir, 'ca.crt')),
    issue(name: string) {
      openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=sidewall-webhook'], dir);
      openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', 'san.ext'], dir);
      const serial = openssl(['x509', '-in', `${name}.crt`, '-noout', '-serial'], dir).trim().replace(/^serial=/, '');
      return { certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`), serial };
    },
  };
}

/** Replaces the live cert and key the way a writer without atomic pair updates would: one file, then the other. */
export function installPair(pair: { certFile: string; keyFile: string }, liveCert: string, liveKey: string): void {
  writeFileSync(liveCert + '.tmp', readFileSync(pair.certFile));
  renameSync(liveCert + '.tmp', liveCert);
  writeFileSync(liveKey + '.tmp', readFileSync(pair.keyFile));
  renameSync(liveKey + '.tmp', liveKey);
}
