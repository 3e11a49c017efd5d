// The one per-protocol switch: protocol name → stream parser. Adding a protocol is one folder
// implementing StreamParser plus one line here.
import { DnsStreamParser } from './dns/dns-stream-parser.js';
import { Http1Parser } from './http1/http1-parser.js';
import { Http2Parser } from './http2/http2-parser.js';
import { MysqlParser } from './mysql/mysql-parser.js';
import { PostgresParser } from './postgres/postgres-parser.js';
import { RedisParser } from './redis/redis-parser.js';
import { SshParser } from './ssh/ssh-parser.js';
import { TlsParser } from './tls/tls-parser.js';
import type { ProtocolName, StreamParser } from './types.js';

const PARSERS: Readonly<Record<ProtocolName, () => StreamParser>> = {
  http: () => new Http1Parser(),
  http2: () => new Http2Parser(),
  tls: () => new TlsParser(),
  dns: () => new DnsStreamParser(),
  ssh: () => new SshParser(),
  redis: () => new RedisParser(),
  postgres: () => new PostgresParser(),
  mysql: () => new MysqlParser(),
};

/** Protocols that have a parser, in registry order. */
export const PARSED_PROTOCOLS: readonly ProtocolName[] = Object.keys(PARSERS) as ProtocolName[];

export function hasParser(protocol: string): protocol is ProtocolName {
  return Object.prototype.hasOwnProperty.call(PARSERS, protocol);
}

/** A fresh parser for one connection. Throws only for a protocol without a parser (a bug). */
export function createParser(protocol: ProtocolName): StreamParser {
  const make = PARSERS[protocol];
  if (make === undefined) throw new TypeError(`no parser for protocol ${JSON.stringify(protocol)}`);
  return make();
}
