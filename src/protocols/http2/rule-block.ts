// The `grpc:` rule block (PRODUCT.md "Rules": {services, methods}): gRPC runs on HTTP/2, so a
// grpc block on protocol http or http2 matches once the stream turns out to be a gRPC call
// (`l7.grpc`: the :path's /package.Service/Method, http2-parser.ts).
import { compileGlobs, globMatches } from '../../policy/glob.js';
import { blockSchema, normalizeLists, oneOrList, str } from '../../schema/rule-block.js';
import type { RuleBlockPlugin } from '../plugin.js';

export interface GrpcFacts {
  readonly service: string;
  readonly method: string;
}

interface GrpcBlock {
  services?: string[];
  methods?: string[];
}

export const grpcRuleBlock: RuleBlockPlugin<GrpcBlock, GrpcFacts> = {
  key: 'grpc',
  protocols: ['grpc', 'http2', 'http'],
  schema: blockSchema('grpc', {
    services: oneOrList(str({ format: 'service-glob' })),
    methods: oneOrList(str({ pattern: '^[A-Za-z0-9_*]+$', 'x-messages': { pattern: "'{value}' is not a gRPC method name pattern (letters, digits, '_', '*')" } })),
  }),
  normalize: (block) => normalizeLists(block),
  compile: (g) => {
    const services = g.services === undefined ? null : compileGlobs('service', g.services);
    const methods = g.methods === undefined ? null : compileGlobs('plain', g.methods);
    return (grpc) => (services === null || globMatches(services, grpc.service)) && (methods === null || globMatches(methods, grpc.method));
  },
};
