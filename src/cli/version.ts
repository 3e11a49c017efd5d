// `sidewall --version`: the package version and the image the chart and `sidewall manifests`
// install by default (so an operator can check that the image they built or pushed is the one
// the injected pods will run), and the Node.js runtime in use.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chartMetadata, defaultChartValues, injectorSettingsDocument } from '../../injector/install/render.js';

/** package.json of this package, found from the running module (src/ under tests, dist/src when built). */
function packageVersion(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'sidewall' && typeof pkg.version === 'string') return pkg.version;
    }
    if (dirname(dir) === dir) throw new Error('package.json of sidewall not found above the running module');
  }
}

/** The image the default installation's injector puts into pods (chart values, tag = appVersion). */
export function defaultImage(): string {
  const settings = injectorSettingsDocument(defaultChartValues(), 'sidewall', chartMetadata().appVersion);
  return String(settings.image);
}

export function versionText(): string {
  return [`sidewall ${packageVersion()}`, `image ${defaultImage()}`, `node ${process.version}`].join('\n') + '\n';
}
