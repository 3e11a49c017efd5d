// Modules the default configuration never uses, loaded on their first use instead of at start
// (issue 18: RSS ≤ 50 MiB idle). Each one costs the process its source text, its compiled code
// and its tables for as long as it runs — tldts's suffix list, re2js, fflate, node:http2 — and a
// sidecar without DNS tunnels, DLP patterns, compressed bodies or gRPC observers never needs
// them. Loading is synchronous (require; CommonJS builds, or require(esm) of Node ≥ 20.19) because
// the first use is inside a decision: the caller cannot wait for an import() there.
//
// Fail closed: a module that cannot be loaded (a broken image, a missing file) makes get() throw
// a LazyModuleError naming the module and what needed it, every time it is asked again. The
// decision that needed it fails the way a bug there would: the connection is reset, the DNS
// query dropped, the config or rules refused — never allowed as if the check had passed.
import { createRequire } from 'node:module';

const requireHere = createRequire(import.meta.url);

export class LazyModuleError extends Error {
  constructor(
    readonly specifier: string,
    readonly neededFor: string,
    cause: unknown,
  ) {
    super(`cannot load ${specifier} (needed for ${neededFor}): ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'LazyModuleError';
  }
}

export class LazyModule<T> {
  private mod: T | undefined;

  /**
   * @param specifier what `require` resolves from this file (a package name, or node:…)
   * @param neededFor the feature, for the error message
   * @param load how to load it (tests give one that fails)
   */
  constructor(
    readonly specifier: string,
    readonly neededFor: string,
    private readonly load: () => unknown = () => requireHere(specifier),
  ) {}

  /** True once get() has loaded it. */
  get loaded(): boolean {
    return this.mod !== undefined;
  }

  /** The module; loads it on the first call. Throws LazyModuleError when it cannot be loaded. */
  get(): T {
    if (this.mod !== undefined) return this.mod;
    let mod: T;
    try {
      mod = this.load() as T;
    } catch (err) {
      throw new LazyModuleError(this.specifier, this.neededFor, err);
    }
    if (mod === undefined || mod === null) throw new LazyModuleError(this.specifier, this.neededFor, new Error('it exported nothing'));
    this.mod = mod;
    return mod;
  }
}
