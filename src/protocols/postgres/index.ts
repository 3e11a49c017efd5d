// PostgreSQL (protocol 3): startup / SSLRequest detection, the message parser, and a verdict on
// the session (user, database) and per statement (postgres-enforcer.ts).
import { PostgresEnforcer } from './postgres-enforcer.js';
import type { ProtocolPlugin } from '../plugin.js';
import { sqlLearning } from '../sql/learn.js';
import { POSTGRES_RECORD_FIELDS } from '../sql/record-fields.js';
import { sqlRuleBlock } from '../sql/rule-block.js';
import { detectPostgres } from './detect.js';
import { PostgresParser } from './postgres-parser.js';

export const postgresProtocol = {
  name: 'postgres',
  detectClient: detectPostgres,
  createParser: () => new PostgresParser(),
  enforcer: (deps) => new PostgresEnforcer(deps),
  ruleBlock: sqlRuleBlock('postgres') as ProtocolPlugin['ruleBlock'],
  learn: sqlLearning('postgres'),
  recordFields: POSTGRES_RECORD_FIELDS,
} as const satisfies ProtocolPlugin<'postgres'>;
