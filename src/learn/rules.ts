// Rules from a learned model: the workload tier (src/policy/README.md), allow rules only, one per
// entry and L7 shape, ordered most specific first, with deterministic ids and a provenance
// description (first and last seen, count). The same model always gives the same rules.
import { createHash } from 'node:crypto';
import { LearnModel, nameGlob, pathGlob, type LearnedPeer, type ObservedRecord, type ServiceEntry } from './model.js';
import { pluginForRecord } from '../protocols/registry.js';
import { WILDCARD } from './segment-classifier.js';
import type { TemplateEntry } from './template-trie.js';

/** A generated rule, in the key order it is printed. */
export type LearnedRule = {
  id: string;
  action: 'allow';
  description: string;
  direction: 'ingress' | 'egress' | 'intra';
  peer: LearnedPeer;
  ports: number[];
  protocol: string;
  http?: { methods: string[]; paths: string[]; hosts?: string[] };
  grpc?: { services: string[]; methods: string[] };
  tls?: { sni: string[] };
  dns?: { names: string[]; types?: string[] };
  redis?: { commands: string[]; keys?: string[] };
  postgres?: { users?: string[]; databases?: string[]; statements?: string[] };
  mysql?: { users?: string[]; databases?: string[]; statements?: string[] };
  // A block a protocol's folder adds (registry `ruleBlock`, learned by its `learn`) is one more
  // key, named by the protocol: see draftsFor.
};

interface Draft {
  rule: Omit<LearnedRule, 'id' | 'description'>;
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

/** Fewer wildcards and more literal characters make a glob more specific. */
function globSpecificity(globs: readonly string[]): number {
  let score = 0;
  for (const glob of globs) {
    const wild = (glob.match(/\*/g) ?? []).length;
    score += glob.length - wild * 8;
  }
  return globs.length === 0 ? 0 : score / globs.length;
}

function sumStats(list: readonly TemplateEntry[]): { count: number; first: number; last: number } {
  let count = 0;
  let first = Number.POSITIVE_INFINITY;
  let last = 0;
  for (const e of list) {
    count += e.stats.count;
    if (e.stats.first < first) first = e.stats.first;
    if (e.stats.last > last) last = e.stats.last;
  }
  return { count, first, last };
}

/** HTTP/1 seen → 'http' (it also matches HTTP/2); only HTTP/2 seen → 'http2'. */
function httpProtocol(entry: ServiceEntry): string {
  return entry.protocols.has('http') ? 'http' : 'http2';
}

function draftsFor(entry: ServiceEntry, l7Endpoints: ReadonlySet<string>): Draft[] {
  const base = { action: 'allow' as const, direction: entry.direction, peer: entry.peer, ports: [entry.port] };
  const idBase = `learn-${entry.direction}-${peerName(entry.peer)}-${entry.family}-${entry.port}`;
  const peerScore = peerSpecificity(entry.peer);
  const drafts: Draft[] = [];
  switch (entry.family) {
    case 'http': {
      const hosts = entry.unnamed || entry.names === undefined ? undefined : entry.names.entries().map((e) => nameGlob(e.parts, e.deep));
      // One rule per set of methods: paths seen with exactly GET together, GET+POST together, ...
      const groups = new Map<string, TemplateEntry[]>();
      for (const e of entry.paths?.entries() ?? []) {
        const methods = [...e.stats.tags].sort().join(',');
        const list = groups.get(methods) ?? [];
        list.push(e);
        groups.set(methods, list);
      }
      for (const [methods, list] of groups) {
        const paths = list.map((e) => pathGlob(e.parts, e.deep));
        const http: NonNullable<LearnedRule['http']> = { methods: methods.split(','), paths };
        if (hosts !== undefined && hosts.length > 0) http.hosts = hosts;
        drafts.push({
          rule: { ...base, protocol: httpProtocol(entry), http },
          idBase: `${idBase}-${methods.toLowerCase().replace(/,/g, '-')}`,
          specificity: 100 + peerScore + globSpecificity(paths) / 100,
          unit: 'requests',
          ...sumStats(list),
        });
      }
      break;
    }
    case 'grpc': {
      const services = new Map<string, TemplateEntry[]>();
      for (const e of entry.grpc?.entries() ?? []) {
        const service = e.parts[0] ?? WILDCARD;
        const list = services.get(service) ?? [];
        list.push(e);
        services.set(service, list);
      }
      for (const [service, list] of services) {
        const methods = list.map((e) => (e.deep ? WILDCARD : (e.parts[1] ?? WILDCARD)));
        const unique = [...new Set(methods)].sort();
        const servicePattern = service === WILDCARD ? '**' : service;
        drafts.push({
          // protocol http2, not grpc: the proxy decides a connection's protocol (HTTP/2) before
          // its first call, and only a rule matching http2 then lets the calls be decided one by one.
          rule: { ...base, protocol: 'http2', grpc: { services: [servicePattern], methods: unique.includes(WILDCARD) ? [WILDCARD] : unique } },
          idBase: `${idBase}-${service === WILDCARD ? 'any' : service}`,
          specificity: 100 + peerScore + (service === WILDCARD ? 0 : 1),
          unit: 'calls',
          ...sumStats(list),
        });
      }
      break;
    }
    case 'tls':
    case 'dns': {
      const list = entry.names?.entries() ?? [];
      if (list.length > 0) {
        const names = list.map((e) => nameGlob(e.parts, e.deep));
        const rule: Draft['rule'] =
          entry.family === 'tls'
            ? { ...base, protocol: 'tls', tls: { sni: names } }
            : { ...base, protocol: 'dns', dns: { names, ...(entry.dnsTypes.size > 0 ? { types: [...entry.dnsTypes].sort() } : {}) } };
        drafts.push({ rule, idBase, specificity: 100 + peerScore + globSpecificity(names) / 100, unit: entry.family === 'tls' ? 'connections' : 'queries', ...sumStats(list) });
      }
      // TLS without SNI (or DNS queries without a usable name) can only be allowed by protocol.
      if (entry.unnamed) {
        const rest = entry.stats.count - sumStats(list).count;
        drafts.push({
          rule: { ...base, protocol: entry.family },
          idBase: `${idBase}-${entry.family === 'tls' ? 'no-sni' : 'any-name'}`,
          specificity: 50 + peerScore,
          unit: entry.family === 'tls' ? 'connections' : 'queries',
          count: Math.max(rest, 0),
          first: entry.stats.first,
          last: entry.stats.last,
        });
      }
      break;
    }
    default: {
      // Databases: from their commands and queries; sessions without any (an encrypted one) are
      // learned as the protocol, below.
      if (entry.db.size > 0 && (entry.family === 'redis' || entry.family === 'postgres' || entry.family === 'mysql')) {
        const stats = { count: entry.stats.count, first: entry.stats.first, last: entry.stats.last };
        if (entry.family === 'redis') {
          for (const [template, commands] of [...entry.db].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
            const redis: NonNullable<LearnedRule['redis']> = { commands: [...commands].sort() };
            if (template !== '') redis.keys = [template === '*' ? '*' : template];
            const name = template === '' ? 'no-keys' : template.replace(/\*$/, '').replace(/:$/, '') || 'any';
            drafts.push({ rule: { ...base, protocol: 'redis', redis }, idBase: `${idBase}-${name}`, specificity: 100 + peerScore + (template === '' ? 0 : template.length), unit: 'commands', ...stats });
          }
        } else {
          const block: NonNullable<LearnedRule['postgres']> = {};
          const users = entry.db.get('users');
          const databases = entry.db.get('databases');
          const statements = entry.db.get('statements');
          if (users !== undefined && !users.has('*')) block.users = [...users].sort();
          if (databases !== undefined) block.databases = [...databases].sort();
          if (statements !== undefined) block.statements = [...statements].sort();
          drafts.push({ rule: { ...base, protocol: entry.family, [entry.family]: block }, idBase, specificity: 100 + peerScore, unit: 'queries', ...stats });
        }
        break;
      }
      // A protocol that templates its requests (registry `learn`): one rule with its block.
      const plugin = pluginForRecord(entry.family);
      const templates = entry.templates?.entries() ?? [];
      if (plugin?.learn !== undefined && plugin.ruleBlock !== undefined && templates.length > 0) {
        const block = plugin.learn.block(templates.map((e) => (e.deep ? [...e.parts, WILDCARD] : e.parts)));
        drafts.push({
          rule: { ...base, protocol: entry.family, [plugin.ruleBlock.key]: block } as Draft['rule'],
          idBase,
          specificity: 100 + peerScore,
          unit: 'requests',
          ...sumStats(templates),
        });
        break;
      }
      // An L4 rule. A plain 'tcp' rule would also allow, on the same peer and port, any request the
      // L7 rules do not (a tcp rule matches every protocol), so it is left out where L7 was learned.
      if (entry.family === 'tcp' && l7Endpoints.has(endpointKey(entry))) break;
      drafts.push({
        rule: { ...base, protocol: entry.family },
        idBase,
        specificity: (entry.family === 'tcp' ? 10 : 50) + peerScore,
        unit: 'connections',
        count: entry.stats.count,
        first: entry.stats.first,
        last: entry.stats.last,
      });
    }
  }
  return drafts;
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
    return { id, action, description: describe(draft), ...matchers };
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
