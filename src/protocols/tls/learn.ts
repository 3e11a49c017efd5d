// TLS learning: the SNI of each ClientHello as a name template; one `tls: {sni}` rule with the
// names seen, and a rule on the protocol alone for ClientHellos without SNI.
import { globSpecificity, nameGlob, nameParts, sumStats } from '../../learn/templates.js';
import type { LearnedDraft, LearnPlugin } from '../plugin.js';

export const tlsLearning: LearnPlugin = {
  // A TLS session is decided once, on its ClientHello: its connection record is what to learn.
  family: () => 'tls',
  tries: { names: 'name' },
  observe: (record, _family, into) => {
    const sni = record.l7.sni;
    const parts = typeof sni === 'string' ? nameParts(sni) : null;
    if (parts === null) into.flag('unnamed');
    else into.template('names', parts);
  },
  rules: (entry) => {
    const list = entry.templates('names');
    const drafts: LearnedDraft[] = [];
    if (list.length > 0) {
      const names = list.map((e) => nameGlob(e.parts, e.deep));
      drafts.push({ protocol: 'tls', block: { key: 'tls', value: { sni: names } }, specificity: 100 + globSpecificity(names) / 100, unit: 'connections', ...sumStats(list) });
    }
    // TLS without SNI can only be allowed by protocol.
    if (entry.flag('unnamed')) {
      drafts.push({ protocol: 'tls', id: 'no-sni', specificity: 50, unit: 'connections', count: Math.max(entry.count - sumStats(list).count, 0), first: entry.first, last: entry.last });
    }
    return drafts;
  },
  phrase: ({ l7 }) => `TLS ${typeof l7.sni === 'string' ? `to SNI ${l7.sni}` : 'without SNI'}`,
};
