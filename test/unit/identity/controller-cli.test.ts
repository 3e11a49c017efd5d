// `sidewall controller` as a process (bin/sidewall.js runs the build in dist/, which `npm test`
// makes first): kubeconfig, health port, identity stream, bad flags.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdentityClient } from '../../../src/identity/identity-client.js';
import { WorkloadDirectory } from '../../../src/identity/workload-directory.js';
import { FakeApiServer, makePod } from './fake-apiserver.js';
import { silentLog, waitUntil } from './helpers.js';

const CLI = join(import.meta.dirname, '..', '..', '..', 'bin', 'sidewall.js');
const api = new FakeApiServer();
const dir = mkdtempSync(join(tmpdir(), 'sidewall-controller-'));

beforeAll(async () => {
  await api.start();
  api.addNamespace('shop');
  api.addPod(makePod('shop', 'web-1', '10.4.0.1', { app: 'web' }, { serviceAccount: 'web' }));
});
afterAll(() => api.close());

/**
 * Starts `sidewall controller` on ports the kernel picks (--port 0 --health-port 0: a random port
 * in 20000-40000 could be taken, it overlaps the ephemeral range) and resolves with the ports from
 * its 'sidewall controller started' line. Its stderr, so far, is in every failure message.
 */
async function startController(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ child: ChildProcess; port: number; healthPort: number; stderr: () => string }> {
  const child = spawn(process.execPath, [CLI, 'controller', ...args, '--host', '127.0.0.1', '--port', '0', '--health-port', '0'], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let stderr = '';
  const started = new Promise<{ port: number; healthPort: number }>((resolve, reject) => {
    createInterface({ input: child.stderr! }).on('line', (line) => {
      stderr += `${line}\n`;
      if (!line.includes('sidewall controller started')) return;
      const { port, healthPort } = JSON.parse(line) as { port: number; healthPort: number };
      resolve({ port, healthPort });
    });
    child.once('exit', (code, signal) => reject(new Error(`the controller exited (${String(code ?? signal)}) before it started; stderr: ${stderr}`)));
  });
  // Generous: a loaded 2-core machine (load 17) has taken seconds to load the CLI and list pods.
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  try {
    const ports = await started;
    return { child, ...ports, stderr: () => stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** The exit code, once the process exited (at once when it already has). */
function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', resolve));
}

describe('sidewall controller', () => {
  it('serves identities from the cluster in its kubeconfig and reports readiness', async () => {
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, `apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {server: "http://127.0.0.1:${api.port}", insecure-skip-tls-verify: true}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  context: {cluster: fake, user: u}\ncurrent-context: c\n`);
    const { child, port, healthPort, stderr } = await startController(['--kubeconfig', kubeconfig, '--auth', 'none']);
    const directory = new WorkloadDirectory();
    const client = new IdentityClient({ address: `127.0.0.1:${port}`, directory, client: 't/x', log: silentLog, retryMinMs: 50, retryMaxMs: 200 });
    try {
      // One probe at a time (as the kubelet), until ready: the pods listed.
      let status: { synced: boolean; workloads: number } | undefined;
      for (const deadline = Date.now() + 60_000; ; await new Promise((r) => setTimeout(r, 50))) {
        const r = await fetch(`http://127.0.0.1:${healthPort}/readyz`);
        const body = (await r.json()) as { synced: boolean; workloads: number };
        if (r.status === 200) {
          status = body;
          break;
        }
        if (Date.now() > deadline) throw new Error(`not ready after 60 s: ${JSON.stringify(body)}; stderr: ${stderr()}`);
      }
      expect(status).toMatchObject({ synced: true, workloads: 1 });
      client.start();
      await waitUntil(() => directory.lookup('10.4.0.1')?.pod === 'web-1', 'the identity over the stream', 30_000);
    } finally {
      client.close();
      child.kill('SIGTERM');
    }
    expect(await exited(child)).toBe(0);
  }, 150_000);

  it('serves the identity stream over TLS and picks up a renewed certificate without a restart', async () => {
    const tlsDir = mkdtempSync(join(tmpdir(), 'sidewall-controller-tls-'));
    const ssl = (...args: string[]) => {
      const r = spawnSync('openssl', args, { cwd: tlsDir, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
    };
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=test-ca', '-keyout', 'ca.key', '-out', 'ca.crt');
    const issue = (serial: string) => {
      ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', 'next.key', '-out', 'next.csr');
      writeFileSync(join(tlsDir, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
      ssl('x509', '-req', '-in', 'next.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', serial, '-days', '1', '-extfile', 'san.ext', '-out', 'next.crt');
      // As a Secret update lands: both files replaced.
      renameSync(join(tlsDir, 'next.key'), join(tlsDir, 'tls.key'));
      renameSync(join(tlsDir, 'next.crt'), join(tlsDir, 'tls.crt'));
    };
    issue('0x1001');
    const kubeconfig = join(dir, 'kubeconfig-tls');
    writeFileSync(kubeconfig, `apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {server: "http://127.0.0.1:${api.port}", insecure-skip-tls-verify: true}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  context: {cluster: fake, user: u}\ncurrent-context: c\n`);
    const { child, port, stderr } = await startController(['--kubeconfig', kubeconfig, '--auth', 'none', '--tls-cert', join(tlsDir, 'tls.crt'), '--tls-key', join(tlsDir, 'tls.key')], { ...process.env, SIDEWALL_TLS_REFRESH_MS: '200' });
    const servedSerial = () =>
      new Promise<string>((resolve, reject) => {
        const socket = tlsConnect({ host: '127.0.0.1', port, ca: readFileSync(join(tlsDir, 'ca.crt')), servername: 'localhost', ALPNProtocols: ['h2'] }, () => {
          resolve(socket.getPeerCertificate().serialNumber);
          socket.destroy();
        });
        socket.on('error', reject);
      });
    /**
     * The serial served once `want` accepts it: one handshake at a time (a poll that opened a
     * 2048-bit RSA handshake every 5 ms starved the controller's own start on a loaded machine),
     * 30 s at most to pick up the renewal.
     */
    const served = async (want: (serial: string) => boolean, what: string): Promise<string> => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const serial = await servedSerial().catch(() => '');
        if (want(serial)) return serial;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last serial '${serial}'; stderr: ${stderr()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const directory = new WorkloadDirectory();
    const client = new IdentityClient({ address: `127.0.0.1:${port}`, directory, client: 't/tls', log: silentLog, retryMinMs: 50, retryMaxMs: 200, caFile: join(tlsDir, 'ca.crt') });
    try {
      expect(await served((s2) => s2 !== '', 'a TLS handshake')).toBe('1001');
      client.start();
      await waitUntil(() => directory.lookup('10.4.0.1')?.pod === 'web-1', 'the identity over the TLS stream', 30_000).catch((err: Error) => {
        throw new Error(`${err.message} (client: ${JSON.stringify(client.status())}; stderr: ${stderr()})`);
      });
      issue('0x1002');
      await served((s2) => s2 === '1002', 'the renewed certificate');
    } finally {
      client.close();
      child.kill('SIGTERM');
    }
    expect(await exited(child)).toBe(0);
  }, 150_000);

  it('refuses bad flags with a one-line reason', () => {
    const r = spawnSync(process.execPath, [CLI, 'controller', '--auth', 'maybe'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toBe("sidewall controller: --auth: 'maybe' is not tokenreview or none\n");
    const tls = spawnSync(process.execPath, [CLI, 'controller', '--tls-cert', 'x.pem'], { encoding: 'utf8' });
    expect(tls.stderr).toContain('--tls-cert and --tls-key go together');
  });
});
