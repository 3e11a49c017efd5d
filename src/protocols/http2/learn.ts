// HTTP/2 learning: its requests learn as HTTP (the family `http`, http1/learn.ts), its gRPC calls
// as [service, method] (the family `grpc`), one `grpc` rule per service.
import { sumStats, WILDCARD } from '../../learn/templates.js';
import { httpPhrase, observeHttpRequest } from '../http1/learn.js';
import type { LearnedDraft, LearnedTemplate, LearnPlugin } from '../plugin.js';

const GRPC_SERVICE = /^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/;
const GRPC_METHOD = /^[A-Za-z0-9_]+$/;

export const http2Learning: LearnPlugin = {
  family: (record) => (record.type !== 'request' ? null : record.protocol === 'grpc' ? 'grpc' : 'http'),
  tries: { grpc: 'plain' },
  observe: (record, family, into) => {
    if (family !== 'grpc') {
      observeHttpRequest(record, into);
      return;
    }
    const l7 = record.l7;
    const service = typeof l7.service === 'string' && GRPC_SERVICE.test(l7.service) ? l7.service : WILDCARD;
    const method = typeof l7.grpcMethod === 'string' && GRPC_METHOD.test(l7.grpcMethod) ? l7.grpcMethod : WILDCARD;
    into.template('grpc', [service, method]);
  },
  rules: (entry) => {
    const services = new Map<string, LearnedTemplate[]>();
    for (const e of entry.templates('grpc')) {
      // A saved model's parts are checked again (observing checked them when they were seen).
      const service = e.parts[0] !== undefined && GRPC_SERVICE.test(e.parts[0]) ? e.parts[0] : WILDCARD;
      const list = services.get(service) ?? [];
      list.push(e);
      services.set(service, list);
    }
    const drafts: LearnedDraft[] = [];
    for (const [service, list] of services) {
      const methods = list.map((e) => (e.deep || e.parts[1] === undefined || !GRPC_METHOD.test(e.parts[1]) ? WILDCARD : e.parts[1]));
      const unique = [...new Set(methods)].sort();
      drafts.push({
        // protocol http2, not grpc: the proxy decides a connection's protocol (HTTP/2) before
        // its first call, and only a rule matching http2 then lets the calls be decided one by one.
        protocol: 'http2',
        block: { key: 'grpc', value: { services: [service === WILDCARD ? '**' : service], methods: unique.includes(WILDCARD) ? [WILDCARD] : unique } },
        id: service === WILDCARD ? 'any' : service,
        specificity: 100 + (service === WILDCARD ? 0 : 1),
        unit: 'calls',
        ...sumStats(list),
      });
    }
    return drafts;
  },
  phrase: (record) => (typeof record.l7.grpcMethod === 'string' ? `gRPC ${String(record.l7.service)}/${record.l7.grpcMethod}` : httpPhrase(record)),
};
