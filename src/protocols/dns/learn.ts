// DNS learning: each query's name (a name template) and type; one `dns: {names, types}` rule, and
// a rule on the protocol alone for queries without a usable name.
import { globSpecificity, nameGlob, nameParts, sumStats } from '../../learn/templates.js';
import type { LearnedDraft, LearnPlugin } from '../plugin.js';

const DNS_TYPE = /^[A-Z0-9]{1,10}$/;

export const dnsLearning: LearnPlugin = {
  tries: { names: 'name' },
  observe: (record, _family, into) => {
    const { name, type } = record.l7;
    const parts = typeof name === 'string' ? nameParts(name) : null;
    if (parts === null) into.flag('unnamed');
    else into.template('names', parts);
    const upper = typeof type === 'string' ? type.toUpperCase() : '';
    if (DNS_TYPE.test(upper)) into.value('dnsTypes', upper);
  },
  rules: (entry) => {
    const list = entry.templates('names');
    const drafts: LearnedDraft[] = [];
    if (list.length > 0) {
      const names = list.map((e) => nameGlob(e.parts, e.deep));
      const types = (entry.values('dnsTypes') ?? []).filter((t) => DNS_TYPE.test(t)).sort();
      drafts.push({ protocol: 'dns', block: { key: 'dns', value: { names, ...(types.length > 0 ? { types } : {}) } }, specificity: 100 + globSpecificity(names) / 100, unit: 'queries', ...sumStats(list) });
    }
    if (entry.flag('unnamed')) {
      drafts.push({ protocol: 'dns', id: 'any-name', specificity: 50, unit: 'queries', count: Math.max(entry.count - sumStats(list).count, 0), first: entry.first, last: entry.last });
    }
    return drafts;
  },
  phrase: ({ l7 }) => (typeof l7.name === 'string' ? `DNS ${String(l7.type ?? '')} ${l7.name}`.replace('  ', ' ') : null),
};
