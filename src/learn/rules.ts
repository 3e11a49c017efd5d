// Rules from a learned model: the workload tier (src/policy/README.md), allow rules only, one per
// entry and L7 shape, ordered most specific first, with deterministic ids and a provenance
// description (first and last seen, count). The same model always gives the same rules. What an
// entry's L7 rules are is its protocol's to say (registry `learn.rules`, protocols/plugin.ts);
// this file adds the rest (id, direction, peer, port, order) and names no protocol.
import { createHash } from 'node:crypto';
import { LearnModel, type LearnedPeer, type ObservedRecord, type ServiceEntry } from './model.js';
import { pluginForRecord } from '../protocols/registry.js';

/** A generated rule, in the key order it is printed. */
export type LearnedRule = {
  id: string;
  action: 'allow';
  description: string;
  direction: 'ingress' | 'egress' | 'intra';
  peer: LearnedPeer;
  ports: number[];
  protocol: string;
} & {
  /** The L7 block the protocol's learning proposed (`http`, `tls`, `redis`...), under its key. */
  readonly [block: string]: unknown;
};

/** A rule before its id and description: the fixed matchers and the protocol's block. */
type DraftRule = Pick<LearnedRule, 'action' | 'direction' | 'peer' | 'ports' | 'protocol'> & { readonly [block: string]: unknown };

interface Draft {
  rule: DraftRule;
  idBase: string;
  specificity: number;
  count: number;
  first: number;
  last: number;
  unit: string;
}

const ID_UNSAFE = /[^A-Za-z0-9._:/@-]+/g;
const MAX_ID = 128;

function iso(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : 'unknown';
}

function peerName(peer: LearnedPeer): string {
  if ('cidr' in peer) return peer.cidr.endsWith('/32') || peer.cidr.endsWith('/128') ? peer.cidr.replace(/\/\d+$/, '') : peer.cidr;
  if ('service' in peer) return `svc-${peer.service.split('/').reverse().join('.')}`;
  if (peer.labels !== undefined && Object.keys(peer.labels).length > 0) return `${Object.keys(peer.labels).sort().map((k) => peer.labels![k]).join('-')}.${peer.namespace}`;
  if (peer.serviceAccount !== undefined) return `sa-${peer.serviceAccount}.${peer.namespace}`;
  return peer.namespace;
}

/** Peer precision: named workload > namespace; for addresses, by prefix length. */
function peerSpecificity(peer: LearnedPeer): number {
  if ('service' in peer) return 40;
  if (!('cidr' in peer)) return peer.labels !== undefined || peer.serviceAccount !== undefined ? 40 : 20;
  const bits = Number(peer.cidr.split('/')[1]);
  return peer.cidr.includes(':') ? Math.round((bits / 128) * 32) + 8 : bits + 8;
}

function draftsFor(entry: ServiceEntry, l7Endpoints: ReadonlySet<string>): Draft[] {
  const base = { action: 'allow' as const, direction: entry.direction, peer: entry.peer, ports: [entry.port] };
  const idBase = `learn-${entry.direction}-${peerName(entry.peer)}-${entry.family}-${entry.port}`;
  const peerScore = peerSpecificity(entry.peer);
  const learn = pluginForRecord(entry.family)?.learn;
  if (learn !== undefined) {
    // Its rules, or none: what the protocol's learning cannot name is not allowed.
    return learn.rules(entry).map((d): Draft => ({
      rule: { ...base, protocol: d.protocol, ...(d.block === undefined ? {} : { [d.block.key]: d.block.value }) } as Draft['rule'],
      idBase: d.id === undefined || d.id === '' ? idBase : `${idBase}-${d.id}`,
      specificity: d.specificity + peerScore,
      unit: d.unit,
      count: d.count,
      first: d.first,
      last: d.last,
    }));
  }
  // An L4 rule. A plain 'tcp' rule would also allow, on the same peer and port, any request the
  // L7 rules do not (a tcp rule matches every protocol), so it is left out where L7 was learned.
  if (entry.family === 'tcp' && l7Endpoints.has(endpointKey(entry))) return [];
  return [{
    rule: { ...base, protocol: entry.family },
    idBase,
    specificity: (entry.family === 'tcp' ? 10 : 50) + peerScore,
    unit: 'connections',
    count: entry.stats.count,
    first: entry.stats.first,
    last: entry.stats.last,
  }];
}

function endpointKey(entry: ServiceEntry): string {
  return `${entry.direction}|${JSON.stringify(entry.peer)}|${entry.port}`;
}

function sanitizeId(text: string): string {
  const clean = text.replace(ID_UNSAFE, '-').replace(/^[^A-Za-z0-9]+/, '');
  return clean.slice(0, MAX_ID - 8);
}

function describe(draft: Draft): string {
  return `learned: ${draft.count} ${draft.count === 1 ? draft.unit.replace(/s$/, '') : draft.unit}, first seen ${iso(draft.first)}, last seen ${iso(draft.last)}`;
}

function compareDrafts(a: Draft, b: Draft): number {
  if (a.specificity !== b.specificity) return b.specificity - a.specificity;
  const ka = JSON.stringify(a.rule);
  const kb = JSON.stringify(b.rule);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** The model's rules, most specific first; ids are unique and stable for the same model. */
export function generateRules(model: LearnModel): LearnedRule[] {
  const entries = model.entries();
  const l7Endpoints = new Set(entries.filter((e) => e.family !== 'tcp').map(endpointKey));
  const drafts = entries.flatMap((entry) => draftsFor(entry, l7Endpoints)).sort(compareDrafts);
  const used = new Set<string>();
  return drafts.map((draft) => {
    const base = sanitizeId(draft.idBase);
    let id = base;
    for (let n = 2; used.has(id); n++) id = `${base}-${n}`;
    used.add(id);
    const { action, ...matchers } = draft.rule;
    return { id, action, description: describe(draft), ...matchers } as LearnedRule;
  });
}

/**
 * The one rule that would allow what a record shows (a drift alert's suggestion), or null when
 * the record carries nothing a rule can name. Its id ends in a short hash of its matchers, so
 * accepting several suggestions never gives two rules the same id.
 */
export function suggestRule(record: ObservedRecord & { time?: string }, timeMs?: number): LearnedRule | null {
  const at = timeMs ?? (record.time !== undefined ? Date.parse(record.time) : Date.now());
  const model = new LearnModel({ maxServices: 1, maxPaths: 64 });
  if (!model.observe(record, at)) return null;
  const [rule] = generateRules(model);
  if (rule === undefined) return null;
  const { id, description: _description, ...matchers } = rule;
  const hash = createHash('sha256').update(JSON.stringify(matchers)).digest('hex').slice(0, 6);
  return { ...rule, id: `${id.slice(0, MAX_ID - 8)}-${hash}`, description: `suggested for new behaviour seen ${iso(at)}` };
}
