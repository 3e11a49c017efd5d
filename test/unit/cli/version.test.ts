// `sidewall --version` as a process (bin/sidewall.js runs the build in dist/, which `npm test`
// makes first): the version, and the image the default installation puts into pods — the one
// `npm run image` tags — so an operator can check the two agree.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../../../bin/sidewall.js', import.meta.url));
const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 20_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('sidewall --version', () => {
  it('prints the package version, the default image and the Node.js runtime, and exits 0', () => {
    const result = run(['--version']);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toBe(`sidewall ${pkg.version}\nimage localhost/sidewall:${pkg.version}\nnode ${process.version}\n`);
    expect(run(['-v']).stdout).toBe(result.stdout);
  });

  it('names the image `sidewall manifests` installs (webhook, controller and injected containers)', () => {
    const image = /^image (.+)$/m.exec(run(['--version']).stdout)?.[1];
    const manifests = run(['manifests', '--cert-manager', '--set', 'controller.enabled=false']);
    expect(manifests.status, manifests.stderr).toBe(0);
    const images = new Set([...manifests.stdout.matchAll(/^\s*image: (\S+)$/gm)].map((m) => m[1]));
    expect([...images]).toEqual([image]);
  });

  it('is listed in --help', () => {
    expect(run(['--help']).stdout).toContain("'sidewall --version'");
  });
});
