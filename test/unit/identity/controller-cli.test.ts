// `sidewall controller` as a process (bin/sidewall.js runs the build in dist/, which `npm test`
// makes first): kubeconfig, health port, identity stream, bad flags.
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

function freePort(): number {
  return 20000 + Math.floor(Math.random() * 20000);
}

describe('sidewall controller', () => {
  it('serves identities from the cluster in its kubeconfig and reports readiness', async () => {
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, `apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {server: "http://127.0.0.1:${api.port}", insecure-skip-tls-verify: true}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  context: {cluster: fake, user: u}\ncurrent-context: c\n`);
    const port = freePort();
    const healthPort = port + 1;
    const child = spawn(process.execPath, [CLI, 'controller', '--kubeconfig', kubeconfig, '--auth', 'none', '--host', '127.0.0.1', '--port', String(port), '--health-port', String(healthPort)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const directory = new WorkloadDirectory();
    const client = new IdentityClient({ address: `127.0.0.1:${port}`, directory, client: 't/x', log: silentLog, retryMinMs: 50, retryMaxMs: 200 });
    try {
      let ready = 0;
      await waitUntil(() => {
        void fetch(`http://127.0.0.1:${healthPort}/readyz`).then((r) => (ready = r.status), () => undefined);
        return ready === 200;
      }, `readiness (stderr: ${stderr})`, 10_000);
      const status = (await (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).json()) as { synced: boolean; workloads: number };
      expect(status).toMatchObject({ synced: true, workloads: 1 });
      client.start();
      await waitUntil(() => directory.lookup('10.4.0.1')?.pod === 'web-1', 'the identity over the stream');
      expect(stderr).toContain('sidewall controller started');
    } finally {
      client.close();
      child.kill('SIGTERM');
    }
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(0);
  });

  it('refuses bad flags with a one-line reason', () => {
    const r = spawnSync(process.execPath, [CLI, 'controller', '--auth', 'maybe'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toBe("sidewall controller: --auth: 'maybe' is not tokenreview or none\n");
    const tls = spawnSync(process.execPath, [CLI, 'controller', '--tls-cert', 'x.pem'], { encoding: 'utf8' });
    expect(tls.stderr).toContain('--tls-cert and --tls-key go together');
  });
});
