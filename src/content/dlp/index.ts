// DLP (PRODUCT.md config `dlp`, Rules `dlp`, "Content: DLP and capture"): the sensors compiled
// once from the config into an immutable engine; the enforcers ask it, per request, which
// sensors apply and get scanners from it. Nothing here knows sockets, rules or records.
import type { Direction } from '../../policy/types.js';
import type { HeaderList } from '../../protocols/types.js';
import { compileCustomSensor, type CustomPattern } from './custom.js';
import { contentEncodings, MessageScanner, scanValue, type DlpHit, type DlpWhere, type MessageScanOptions } from './scanner.js';
import { BUILTIN_SENSOR_NAMES, BUILTIN_SENSORS, type Sensor } from './sensors.js';

export type { DlpHit, DlpWhere } from './scanner.js';
export { MessageScanner, TextScanner, scanValue } from './scanner.js';
export { BUILTIN_SENSOR_NAMES } from './sensors.js';
export { customPatternError } from './custom.js';

export const DLP_WHERE: readonly DlpWhere[] = ['request-body', 'response-body', 'header', 'query'];

export interface DlpSettings {
  /** alert: records only; block: under protect, cuts the exchange. */
  action: 'alert' | 'block';
  /** Sensors every in-scope request is scanned with (built-ins by name, or custom names). */
  sensors: string[];
  patterns: CustomPattern[];
  /** Directions scanned. */
  directions: Direction[];
  /** Parts of the exchange scanned. */
  scan: DlpWhere[];
  /** Decoded bytes scanned per message; the rest is recorded as truncated. */
  maxBytes: number;
  /** Decoded/encoded ratio past which a compressed body is refused as a bomb. */
  maxRatio: number;
  /**
   * How long bytes that may be the beginning of a value (a read ending in the first digits of a
   * card) wait for the sender's next bytes; then what could still change is decided as if the
   * message ended there, and the rest goes (a sender that pauses is never stalled for longer).
   */
  holdMs: number;
}

export const DEFAULT_DLP: Readonly<Omit<DlpSettings, 'sensors' | 'patterns'>> = Object.freeze({
  action: 'alert',
  directions: ['ingress', 'egress', 'intra'] as Direction[],
  scan: [...DLP_WHERE],
  maxBytes: 1024 * 1024,
  maxRatio: 100,
  holdMs: 200,
});

/**
 * Header fields that carry credentials by design: the `jwt` sensor does not look at them (a
 * bearer token in `authorization` is how the request authenticates, not a leak).
 */
const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie']);

/** The sensors that apply to one request, and the options of its scanners. */
export interface DlpScope {
  readonly sensors: readonly Sensor[];
  readonly names: ReadonlySet<string>;
  readonly scan: ReadonlySet<DlpWhere>;
}

export class DlpEngine {
  private readonly sensors = new Map<string, Sensor>();
  private readonly directions: ReadonlySet<Direction>;
  private readonly scan: ReadonlySet<DlpWhere>;
  private readonly scopes = new Map<string, DlpScope | null>();
  readonly action: 'alert' | 'block';

  constructor(readonly settings: Readonly<DlpSettings>) {
    for (const [name, s] of BUILTIN_SENSORS) this.sensors.set(name, s);
    for (const p of settings.patterns) this.sensors.set(p.name, compileCustomSensor(p));
    this.directions = new Set(settings.directions);
    this.scan = new Set(settings.scan);
    this.action = settings.action;
  }

  /** Every sensor name this engine knows (built-ins and the config's patterns). */
  get sensorNames(): string[] {
    return [...this.sensors.keys()];
  }

  /**
   * The sensors for a request in `direction`: the config's, plus those the rules name
   * (`ruleSensors`, scanned so a rule's `dlp` matcher can see them), unless the deciding rule
   * turned DLP off (`dlp: []`). Null: nothing to scan (no cost at all for the request).
   */
  scope(direction: Direction, ruleSensors: readonly string[], off: boolean): DlpScope | null {
    if (off) return null;
    const configured = this.directions.has(direction) ? this.settings.sensors : [];
    if (configured.length === 0 && ruleSensors.length === 0) return null;
    const key = `${configured.length > 0 ? direction : '-'}|${ruleSensors.join(',')}`;
    let scope = this.scopes.get(key);
    if (scope !== undefined) return scope;
    const names = new Set([...configured, ...ruleSensors].filter((n) => this.sensors.has(n)));
    scope = names.size === 0 ? null : { sensors: [...names].map((n) => this.sensors.get(n)!), names, scan: this.scan };
    if (this.scopes.size > 256) this.scopes.clear();
    this.scopes.set(key, scope);
    return scope;
  }

  /** Query string (percent-decoded as a form would be) and header values of a request or response head. */
  scanHead(scope: DlpScope, target: string | null, headers: HeaderList, hits: DlpHit[]): void {
    if (target !== null && scope.scan.has('query')) {
      const q = target.indexOf('?');
      if (q >= 0) scanValue(scope.sensors, 'query', decodeQuery(target.slice(q + 1)), hits);
    }
    if (scope.scan.has('header')) for (const [name, value] of headers) this.scanField(scope, name, value, hits);
  }

  /** One header or trailer field's value. */
  scanField(scope: DlpScope, name: string, value: string, hits: DlpHit[]): void {
    const sensors = CREDENTIAL_HEADERS.has(name) && scope.names.has('jwt') ? scope.sensors.filter((s) => s.name !== 'jwt') : scope.sensors;
    scanValue(sensors, 'header', value, hits, name);
  }

  /** A body scanner, or null when bodies in that position are not scanned. */
  body(scope: DlpScope, where: 'request-body' | 'response-body', headers: HeaderList, chunked: boolean): MessageScanner | null {
    if (!scope.scan.has(where)) return null;
    const options: MessageScanOptions = { chunked, contentEncoding: contentEncodings(headers), maxBytes: this.settings.maxBytes, maxRatio: this.settings.maxRatio };
    // A chunked body's trailer fields are scanned as the head's are (one closure per such body).
    if (chunked && scope.scan.has('header')) options.trailerField = (name, value, hits) => this.scanField(scope, name, value, hits);
    // gRPC (application/grpc, +proto, +json; not grpc-web, whose trailers frame has flag 0x80).
    const type = headers.find(([n]) => n === 'content-type')?.[1]?.toLowerCase();
    if (type !== undefined && /^application\/grpc(?:$|[+;])/.test(type)) options.grpc = { encoding: headers.find(([n]) => n === 'grpc-encoding')?.[1] };
    return new MessageScanner(scope.sensors, where, options);
  }
}

/** application/x-www-form-urlencoded decoding (WHATWG URL §5.1), leniently: bad escapes stay as they are. */
export function decodeQuery(query: string): string {
  const plus = query.replaceAll('+', ' ');
  try {
    return decodeURIComponent(plus);
  } catch {
    return plus.replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  }
}

export { BUILTIN_SENSORS };
export const ALL_BUILTINS = BUILTIN_SENSOR_NAMES;
