// TLS (RFC 8446): decided once on the ClientHello (SNI, ALPN; never decrypted), then opaque.
import { sessionEnforcer } from '../../enforcement/handshake-enforcer.js';
import type { ProtocolPlugin } from '../plugin.js';
import { tlsRuleBlock } from './rule-block.js';
import { detectTls } from './detect.js';
import { tlsLearning } from './learn.js';
import { TlsParser } from './tls-parser.js';

const TLS_VERSIONS: Record<number, string> = { 0x0301: 'TLS1.0', 0x0302: 'TLS1.1', 0x0303: 'TLS1.2', 0x0304: 'TLS1.3' };

export const tlsProtocol = {
  name: 'tls',
  detectClient: detectTls,
  ruleBlock: tlsRuleBlock as ProtocolPlugin['ruleBlock'],
  createParser: () => new TlsParser(),
  enforcer: sessionEnforcer((ev) => {
    if (ev.type !== 'tls.client-hello') return null;
    const version = Math.max(ev.legacyVersion, ...ev.supportedVersions.filter((v) => v in TLS_VERSIONS));
    const record: Record<string, unknown> = { alpn: [...ev.alpn], version: TLS_VERSIONS[version] ?? `0x${version.toString(16)}` };
    if (ev.sni !== null) record.sni = ev.sni;
    const tls: { sni?: string; alpn: string[] } = { alpn: [...ev.alpn] };
    if (ev.sni !== null) tls.sni = ev.sni;
    return { facts: { tls }, record };
  }),
  learn: tlsLearning,
  // The connection record's (the session is decided once, on its ClientHello).
  recordFields: {
    sni: { type: 'string', description: 'The ClientHello\'s server name.' },
    alpn: { type: 'array', items: { type: 'string' }, description: 'The ALPN protocols offered.' },
    version: { type: 'string', description: 'The highest version offered (TLS1.0 … TLS1.3, or 0x…).' },
  },
  describe: (l7) => `sni=${String(l7.sni ?? '')}`,
} as const satisfies ProtocolPlugin<'tls'>;
