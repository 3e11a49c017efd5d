// HTTP/1.x (RFC 9112): detection, parser and per-request enforcement, as one registry entry.
import { Http1Enforcer } from './http1-enforcer.js';
import { UNKNOWN, match } from '../detect-util.js';
import type { ProtocolPlugin } from '../plugin.js';
import { httpRuleBlock } from './rule-block.js';
import { detectHttp1, httpRequestLinePrefix } from './detect.js';
import { Http1Parser } from './http1-parser.js';
import { httpLearning } from './learn.js';
import { HTTP1_RECORD_FIELDS } from './record-fields.js';

export const http1Protocol = {
  name: 'http',
  detectClient: detectHttp1,
  // A cut request-line: a prefix of a known method (`G`, `POS`) or a method and its separator.
  // ('PRI' is both the HTTP/2 preface and an HTTP/1 method: HTTP/1's parser takes it.) Bare
  // tokens and empty lines are not taken for HTTP: a text protocol's `ping` would wait forever.
  detectCut: (bytes) => (detectHttp1(bytes).kind === 'match' || httpRequestLinePrefix(bytes) ? match('http', 'low') : UNKNOWN),
  verify: { http: ['http', 'http2'] },
  ruleBlock: httpRuleBlock as ProtocolPlugin['ruleBlock'],
  scansContent: true,
  createParser: () => new Http1Parser(),
  enforcer: (deps) => new Http1Enforcer(deps),
  learn: httpLearning,
  recordFields: HTTP1_RECORD_FIELDS,
  // Compact: the path without the host (the destination column already names it).
  describe: (l7, compact) => `${field(l7, 'method')} ${compact ? '' : field(l7, 'host')}${field(l7, 'path')} ${field(l7, 'status')}`.trim(),
} as const satisfies ProtocolPlugin<'http'>;

function field(l7: Readonly<Record<string, unknown>>, key: string): string {
  const value = l7[key];
  return value === undefined || value === null ? '' : String(value);
}
