// The `l7` fields of HTTP request records (PRODUCT.md "Flow records"), for the flow-record schema
// (src/schema/flow-record.ts assembles every protocol's). HTTP/2 and gRPC records share the
// request-target and DLP fields (http2/index.ts).
import type { JsonSchema } from '../plugin.js';

const text = (description: string): JsonSchema => ({ type: 'string', description });

/** What request-target.ts and request-dlp.ts add to any HTTP request record (HTTP/1, HTTP/2, gRPC). */
export const HTTP_COMMON_FIELDS: Readonly<Record<string, JsonSchema>> = {
  method: text('The request method, as sent.'),
  path: text('The request target, as sent (CONNECT: its authority).'),
  normalizedPath: text('The path the rules saw (request-target.ts normalisation), when it differs from path.'),
  refused: text('Why the request target was refused (400 under protect).'),
  status: { type: 'integer', minimum: 100, maximum: 999, description: "The response's status (403 for a request the sidecar denied)." },
  dlpHits: { type: 'integer', minimum: 1, description: 'DLP sensor hits in the exchange.' },
  dlpTruncated: {
    type: 'object',
    description: 'A body DLP scanned only in part (its byte budget).',
    required: ['where', 'scannedBytes'],
    additionalProperties: false,
    properties: { where: { type: 'string' }, scannedBytes: { type: 'integer', minimum: 0 } },
  },
  dlpUnscanned: text('Why a body could not be decoded for DLP (when that blocks nothing).'),
};

export const HTTP1_RECORD_FIELDS: Readonly<Record<string, JsonSchema>> = {
  ...HTTP_COMMON_FIELDS,
  host: text('The host the rules saw (Host field, or an absolute-form target\'s authority).'),
  upgrade: text('The Upgrade the request asked for (websocket, h2c, ...).'),
  informational: { type: 'array', items: { type: 'integer', minimum: 100, maximum: 199 }, description: '1xx statuses before the final one.' },
};
