// HTTP/2 (RFC 9113) and gRPC over it: prior-knowledge detection, the frame parser and
// per-stream enforcement. gRPC is a rule protocol of its own, carried by HTTP/2.
import { Http2Enforcer } from './http2-enforcer.js';
import type { ProtocolPlugin } from '../plugin.js';
import { detectHttp2 } from './detect.js';
import { Http2Parser } from './http2-parser.js';
import { http2Learning } from './learn.js';

export const http2Protocol = {
  name: 'http2',
  detectClient: detectHttp2,
  declaredAs: ['http2', 'grpc'],
  verify: { http2: ['http2', 'http'], grpc: ['http2'] },
  family: 'http',
  ruleProtocols: ['grpc'],
  createParser: () => new Http2Parser(),
  enforcer: (deps) => new Http2Enforcer(deps),
  learn: http2Learning,
  describe: (l7, compact) =>
    l7.service !== undefined
      ? `${String(l7.service)}/${String(l7.method ?? '')} status=${String(l7.status ?? '')}`
      : `${String(l7.method ?? '')} ${String(l7.host ?? '')}${String(l7.path ?? '')} ${String(l7.status ?? '')}`.trim(),
} as const satisfies ProtocolPlugin<'http2'>;
