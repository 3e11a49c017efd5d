// The `tls:` rule block (PRODUCT.md "Rules": {sni, alpn}), decided on the ClientHello. SNI is
// matched label by label as sent (glob.ts normalizeName): a name that is not a host name matches
// deny rules only (fail closed: the server could read it another way).
import { compileGlobs, nameMatches, normalizeName } from '../../policy/glob.js';
import { blockSchema, normalizeLists, oneOrList, str } from '../../schema/rule-block.js';
import type { RuleBlockPlugin } from '../plugin.js';

export interface TlsFacts {
  readonly sni?: string;
  readonly alpn?: readonly string[];
}

interface TlsBlock {
  sni?: string[];
  alpn?: string[];
}

const lowerName = (s: string): string => s.toLowerCase().replace(/\.$/, '');

export const tlsRuleBlock: RuleBlockPlugin<TlsBlock, TlsFacts> = {
  key: 'tls',
  protocols: ['tls'],
  schema: blockSchema('tls', {
    sni: oneOrList(str({ format: 'name-glob' })),
    alpn: oneOrList(str({ minLength: 1, maxLength: 255, 'x-messages': { minLength: "'{value}' is not an ALPN protocol id", maxLength: "'{value}' is not an ALPN protocol id" } })),
  }),
  normalize: (block) => normalizeLists(block, { sni: lowerName }),
  compile: (t) => {
    const names = t.sni === undefined ? null : compileGlobs('name', t.sni);
    const alpn = t.alpn === undefined ? null : new Set(t.alpn);
    return (tls, action) => {
      if (names !== null && (tls.sni === undefined || !nameMatches(names, normalizeName(tls.sni), action))) return false;
      // Matches when the client offers any of the listed protocols.
      if (alpn !== null && (tls.alpn === undefined || !tls.alpn.some((p) => alpn.has(p)))) return false;
      return true;
    };
  },
};
