// The `l7` fields of PostgreSQL and MySQL records (connection: the session; request: a query or
// command), for the flow-record schema (src/schema/flow-record.ts assembles every protocol's).
import type { JsonSchema } from '../plugin.js';

const text = (description: string): JsonSchema => ({ type: 'string', description });
const texts = (description: string, maxItems?: number): JsonSchema => ({ type: 'array', items: { type: 'string' }, ...(maxItems !== undefined ? { maxItems } : {}), description });

const COMMON: Readonly<Record<string, JsonSchema>> = {
  user: text('The user of the startup message / handshake response.'),
  database: text('The database (MySQL: also after USE or COM_INIT_DB).'),
  encrypted: { type: 'boolean', description: 'The session went TLS before user and database were seen (opaque from then on).' },
  statement: text("The query's first statement verb (SELECT, INSERT, ...)."),
  statements: texts('Every statement verb of the query, in order.'),
  tables: texts('Tables the statements name (at most 8).', 8),
  templates: texts('Verb and tables per statement (at most 8), as learning templates them.', 8),
};

export const POSTGRES_RECORD_FIELDS: Readonly<Record<string, JsonSchema>> = {
  ...COMMON,
  kind: { enum: ['startup', 'ssl-request', 'gssenc-request', 'cancel-request'], description: "The session's first message (connection records)." },
  message: { enum: ['Q', 'P', 'F'], description: 'Simple query, Parse (extended protocol) or FunctionCall.' },
  prepared: text("The prepared statement's name (Parse)."),
};

export const MYSQL_RECORD_FIELDS: Readonly<Record<string, JsonSchema>> = {
  ...COMMON,
  command: text('The command (QUERY, STMT_PREPARE, INIT_DB, CHANGE_USER, ...).'),
};
