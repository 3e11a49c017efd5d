// Public surface of the protocol layer.
export * from './types.js';
export * from './errors.js';
export { createParser, hasParser, parsedProtocols, pluginOf, PARSED_PROTOCOLS, PROTOCOL_PLUGINS, registerProtocol, ruleProtocols, unregisterProtocol, type ProtocolName } from './registry.js';
export type { JsonSchema, LearnPlugin, ProtocolPlugin, RuleBlockPlugin } from './plugin.js';
export { detectClientProtocol, detectServerGreeting, DETECT_MAX_BYTES, GREETING_MAX_BYTES } from './detect.js';
export type { Detection, DetectConfidence, DetectedClientProtocol, DetectedServerProtocol } from './detect.js';
export { parseDnsMessage, buildRefused, dnsTypeName, dnsRcodeName } from './dns/dns-message.js';
export { encodeLiteralHeaderBlock } from './http2/hpack-encoder.js';
export { HpackDecoder } from './http2/hpack-decoder.js';
export {
  buildFrame, buildHeadersFrames, buildDataFrame, buildRstStreamFrame, buildWindowUpdateFrame,
  buildGoawayFrame, buildForbiddenResponse, buildGrpcTrailersOnly, FrameType, FrameFlag, Http2ErrorCode,
} from './http2/frames.js';
export { Http1Parser } from './http1/http1-parser.js';
export { Http2Parser } from './http2/http2-parser.js';
export { TlsParser } from './tls/tls-parser.js';
