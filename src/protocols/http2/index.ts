// HTTP/2 (RFC 9113) and gRPC over it: prior-knowledge detection, the frame parser and
// per-stream enforcement. gRPC is a rule protocol of its own, carried by HTTP/2.
import { Http2Enforcer } from './http2-enforcer.js';
import type { ProtocolPlugin } from '../plugin.js';
import { grpcRuleBlock } from './rule-block.js';
import { detectHttp2 } from './detect.js';
import { Http2Parser } from './http2-parser.js';
import { http2Learning } from './learn.js';
import { HTTP_COMMON_FIELDS } from '../http1/record-fields.js';
import type { JsonSchema } from '../plugin.js';

const text = (description: string): JsonSchema => ({ type: 'string', description });

/** HTTP/2 and gRPC request records' `l7` (http2-enforcer.ts). */
const HTTP2_RECORD_FIELDS: Readonly<Record<string, JsonSchema>> = {
  ...HTTP_COMMON_FIELDS,
  authority: text('The :authority pseudo-header.'),
  service: text('gRPC: the service (package.Service).'),
  grpcMethod: text('gRPC: the method.'),
  grpcStatus: { type: 'integer', minimum: 0, description: 'gRPC: the grpc-status of the trailers (7 for a call the sidecar denied).' },
  ambiguous: text('A single-valued field the request carried twice (refused as ambiguous).'),
};

export const http2Protocol = {
  name: 'http2',
  detectClient: detectHttp2,
  declaredAs: ['http2', 'grpc'],
  verify: { http2: ['http2', 'http'], grpc: ['http2'] },
  family: 'http',
  ruleProtocols: ['grpc'],
  ruleBlock: grpcRuleBlock as ProtocolPlugin['ruleBlock'],
  scansContent: true,
  createParser: () => new Http2Parser(),
  enforcer: (deps) => new Http2Enforcer(deps),
  learn: http2Learning,
  recordFields: HTTP2_RECORD_FIELDS,
  describe: (l7, compact) =>
    l7.service !== undefined
      ? `${String(l7.service)}/${String(l7.method ?? '')} status=${String(l7.status ?? '')}`
      : `${String(l7.method ?? '')} ${String(l7.host ?? '')}${String(l7.path ?? '')} ${String(l7.status ?? '')}`.trim(),
} as const satisfies ProtocolPlugin<'http2'>;
