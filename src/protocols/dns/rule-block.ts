// The `dns:` rule block (PRODUCT.md "Rules": {names, types}), decided per query (and per
// CNAME/DNAME target of an answer, dns-decisions.ts). Names are matched label by label as the
// parser wrote them (glob.ts normalizeName): one that is not a host name matches deny rules only.
import { compileGlobs, nameMatches, normalizeName } from '../../policy/glob.js';
import { blockSchema, normalizeLists, oneOrList, str } from '../../schema/rule-block.js';
import type { FormatCheck } from '../../schema/validator.js';
import type { RuleBlockPlugin } from '../plugin.js';

export interface DnsFacts {
  readonly name: string;
  readonly type: string;
}

interface DnsBlock {
  names?: string[];
  types?: string[];
}

/** Record types by mnemonic (IANA DNS Parameters, "Resource Record (RR) TYPEs"); others as TYPEnnn (RFC 3597). */
export const DNS_TYPES: ReadonlySet<string> = new Set([
  'A', 'NS', 'CNAME', 'SOA', 'PTR', 'HINFO', 'MX', 'TXT', 'RP', 'AFSDB', 'SIG', 'KEY', 'AAAA', 'LOC',
  'SRV', 'NAPTR', 'KX', 'CERT', 'DNAME', 'OPT', 'APL', 'DS', 'SSHFP', 'IPSECKEY', 'RRSIG', 'NSEC',
  'DNSKEY', 'DHCID', 'NSEC3', 'NSEC3PARAM', 'TLSA', 'SMIMEA', 'HIP', 'CDS', 'CDNSKEY', 'OPENPGPKEY',
  'CSYNC', 'ZONEMD', 'SVCB', 'HTTPS', 'SPF', 'NULL', 'TKEY', 'TSIG', 'IXFR', 'AXFR', 'ANY', 'URI', 'CAA',
]);

const DNS_FORMATS: Readonly<Record<string, FormatCheck>> = {
  'dns-type': (s) => {
    const t = s.toUpperCase();
    return DNS_TYPES.has(t) || /^TYPE\d{1,5}$/.test(t) ? null : `'${s}' is not a DNS record type (e.g. A, AAAA, TXT, or TYPE65)`;
  },
};

const upper = (s: string): string => s.toUpperCase();
const lowerName = (s: string): string => s.toLowerCase().replace(/\.$/, '');

export const dnsRuleBlock: RuleBlockPlugin<DnsBlock, DnsFacts> = {
  key: 'dns',
  protocols: ['dns'],
  schema: blockSchema('dns', {
    names: oneOrList(str({ format: 'name-glob' })),
    types: oneOrList(str({ format: 'dns-type' })),
  }),
  formats: DNS_FORMATS,
  normalize: (block) => normalizeLists(block, { names: lowerName, types: upper }),
  compile: (d) => {
    const names = d.names === undefined ? null : compileGlobs('name', d.names);
    const types = d.types === undefined ? null : new Set(d.types);
    return (dns, action) => (names === null || nameMatches(names, normalizeName(dns.name), action)) && (types === null || types.has(dns.type.toUpperCase()));
  },
};
