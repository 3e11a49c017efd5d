// Loads one of the package's N-API addons (binding.gyp targets, built by `npm ci`).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export class NativeAddonError extends Error {
  readonly code = 'SIDEWALL_NATIVE_ADDON';
  constructor(message: string) {
    super(message);
    this.name = 'NativeAddonError';
  }
}

export function loadNativeAddon<T>(target: string): T {
  // dist/src/net and src/net sit at different depths: walk up to the package root.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'build', 'Release', `${target}.node`);
    if (existsSync(candidate)) return createRequire(import.meta.url)(candidate) as T;
    dir = dirname(dir);
  }
  throw new NativeAddonError(`build/Release/${target}.node is missing: run \`npm ci\` (or \`npm run install\`) to build the native addons (needs g++ and make)`);
}

/**
 * An addon the proxy can run without (it only costs speed or memory): loaded on first use, and
 * null from then on when it cannot load (an older build without the target).
 */
export function optionalNativeAddon<T>(target: string): () => T | null {
  let addon: T | null | undefined;
  return () => {
    if (addon === undefined) {
      try {
        addon = loadNativeAddon<T>(target);
      } catch {
        addon = null;
      }
    }
    return addon;
  };
}
