import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { run } from '../../src/cli/webhook.js';

const dir = mkdtempSync(join(tmpdir(), 'sidewall-webhook-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function runCapturing(args: string[]): Promise<{ code: number; stderr: string }> {
  const errors: string[] = [];
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => { errors.push(String(chunk)); return true; });
  try {
    return { code: await run(args), stderr: errors.join('') };
  } finally {
    spy.mockRestore();
  }
}

describe('sidewall webhook command line', () => {
  it('requires the certificate and key', async () => {
    const { code, stderr } = await runCapturing([]);
    expect(code).toBe(2);
    expect(stderr).toContain('--tls-cert and --tls-key are required');
  });

  it('refuses an unknown flag and a bad port', async () => {
    expect((await runCapturing(['--tls-cert', 'a', '--tls-key', 'b', '--bogus'])).code).toBe(2);
    expect((await runCapturing(['--tls-cert', 'a', '--tls-key', 'b', '--port', '99999'])).stderr).toContain("'99999' is not a port number");
  });

  it('exits 1 with a one-line reason for a missing certificate file', async () => {
    const { code, stderr } = await runCapturing(['--tls-cert', join(dir, 'missing.crt'), '--tls-key', join(dir, 'missing.key'), '--port', '19443']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/cannot use TLS certificate .*missing\.crt/);
  });

  it('exits 1 naming every bad key of the settings file', async () => {
    const settings = join(dir, 'injector.yaml');
    writeFileSync(settings, 'nativeSidecar: maybe\nproxyUid: 0\nimage: ghcr.io/x/y:1\nnoSuchKey: 1\n');
    const { code, stderr } = await runCapturing(['--tls-cert', 'a', '--tls-key', 'b', '--settings', settings]);
    expect(code).toBe(1);
    expect(stderr).toContain("nativeSidecar: must be true or false, not the string 'maybe'");
    expect(stderr).toContain('proxyUid: must be a non-zero uid, not 0');
    expect(stderr).toContain('noSuchKey: unknown key');
  });
});
