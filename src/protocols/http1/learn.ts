// HTTP learning (HTTP/1.x and HTTP/2 requests alike, the family `http`): each request's method
// and path template (learn/path-template.ts) and its host (a name template, TLD first); then one
// `http` rule per set of methods seen on the same paths, with the hosts seen.
import { isIP } from 'node:net';
import { normalizeHost } from '../../policy/glob.js';
import { globSpecificity, MAX_PATH_DEPTH, nameGlob, nameParts, pathGlob, pathSegments, sumStats, templatePathSegment } from '../../learn/templates.js';
import type { LearnedDraft, LearnedEntry, LearnedTemplate, LearnObservation, LearnPlugin, LearnRecorder } from '../plugin.js';

const HTTP_METHOD = /^[A-Z][A-Z0-9_-]{0,23}$/;

/** A request of the family http: method and path template (tag: the method), and the host. */
export function observeHttpRequest(record: LearnObservation, into: LearnRecorder): void {
  const l7 = record.l7;
  const method = typeof l7.method === 'string' ? l7.method.toUpperCase() : '';
  const path = typeof l7.path === 'string' ? l7.path : '';
  if (!HTTP_METHOD.test(method) || path === '') {
    into.drop();
    return;
  }
  const segments = pathSegments(path);
  const deep = segments.length > MAX_PATH_DEPTH;
  into.template('paths', (deep ? segments.slice(0, MAX_PATH_DEPTH) : segments).map(templatePathSegment), { tag: method, deep });
  const host = typeof l7.host === 'string' ? l7.host : typeof l7.authority === 'string' ? l7.authority : undefined;
  if (host === undefined || host === '') {
    into.flag('unnamed');
    return;
  }
  const normal = normalizeHost(host);
  const version = isIP(normal);
  // An IPv6 literal cannot be written as a host glob; an IPv4 literal is kept whole (its
  // numbers are an address, not ids).
  if (version === 6 || normal.startsWith('[')) {
    into.flag('unnamed');
    return;
  }
  const parts = version === 4 ? normal.split('.').reverse() : nameParts(normal);
  if (parts === null) into.flag('unnamed');
  else into.template('names', parts);
}

/** One `http` rule per set of methods: paths seen with exactly GET together, GET+POST together, ... */
function httpRules(entry: LearnedEntry): LearnedDraft[] {
  const names = entry.templates('names');
  const hosts = entry.flag('unnamed') || names.length === 0 ? undefined : names.map((e) => nameGlob(e.parts, e.deep));
  // HTTP/1 seen → 'http' (it also matches HTTP/2); only HTTP/2 seen → 'http2'.
  const protocol = entry.protocols.has('http') ? 'http' : 'http2';
  const groups = new Map<string, LearnedTemplate[]>();
  for (const e of entry.templates('paths')) {
    const methods = [...e.tags].sort().join(',');
    const list = groups.get(methods) ?? [];
    list.push(e);
    groups.set(methods, list);
  }
  const drafts: LearnedDraft[] = [];
  for (const [methods, list] of groups) {
    const paths = list.map((e) => pathGlob(e.parts, e.deep));
    const http: Record<string, unknown> = { methods: methods.split(','), paths };
    if (hosts !== undefined && hosts.length > 0) http.hosts = hosts;
    drafts.push({ protocol, block: { key: 'http', value: http }, id: methods.toLowerCase().replace(/,/g, '-'), specificity: 100 + globSpecificity(paths) / 100, unit: 'requests', ...sumStats(list) });
  }
  return drafts;
}

export const httpLearning: LearnPlugin = {
  family: (record) => (record.type === 'request' ? 'http' : null),
  tries: { paths: 'path', names: 'name' },
  observe: (record, _family, into) => observeHttpRequest(record, into),
  rules: httpRules,
  phrase: httpPhrase,
};

/** `http GET /path` (HTTP/2 requests too: the record's protocol names which). */
export function httpPhrase(record: LearnObservation): string | null {
  const { method, path } = record.l7;
  return typeof method === 'string' && typeof path === 'string' ? `${record.protocol} ${method} ${path}` : null;
}
