// The L7 facts of an HTTP request for the rules. Headers become a record only when a rule asks
// for them (a `headers:` matcher): most requests are decided on method, path and host alone.
import type { HeaderList } from '../protocols/types.js';

export class HttpRequestFacts {
  private record: Record<string, string> | undefined;

  constructor(
    readonly method: string,
    readonly path: string,
    readonly host: string | undefined,
    private readonly list: HeaderList,
  ) {}

  /** Lower-case names; repeated headers joined with ", " (RFC 9110 §5.3). */
  get headers(): Record<string, string> {
    if (this.record === undefined) {
      const out: Record<string, string> = {};
      for (const [name, value] of this.list) out[name] = out[name] === undefined ? value : `${out[name]}, ${value}`;
      this.record = out;
    }
    return this.record;
  }
}
