// The rule block of the SQL databases (PRODUCT.md "Rules": `postgres:` and `mysql:`
// {users, databases, statements}): its schema, normalisation and matcher over the facts the
// PostgreSQL and MySQL enforcers decide a session and each statement with. One definition, two
// blocks: the user and database come from the startup message / handshake response, the verbs
// from sql-statements.ts.
import { compileGlobs, globMatches } from '../../policy/glob.js';
import { blockSchema, normalizeLists, oneOrList, str } from '../../schema/rule-block.js';
import type { FormatCheck, JsonSchema } from '../../schema/validator.js';
import type { RuleBlockPlugin } from '../plugin.js';

/** One statement (verb upper-cased) of a query; absent statement: the session's start (startup / handshake). */
export interface SqlFacts {
  user?: string;
  database?: string;
  /** The statement's verb (SELECT, INSERT, ...); absent at session start. */
  statement?: string;
  /** The session went encrypted (SSLRequest accepted) before user and database were seen: rules
   *  naming users, databases or statements match only if they deny (fail closed). */
  encrypted?: boolean;
}

/** The block as the compiler reads it (normalised: lists, verbs upper-cased). */
export interface SqlBlock {
  users?: string[];
  databases?: string[];
  /** Upper-cased verbs (SQL_VERBS). */
  statements?: string[];
}

/**
 * Statement verbs a `statements` list may name (the leading keyword of a SQL statement; see
 * sql-statements.ts). 'DDL' names CREATE, ALTER, DROP, TRUNCATE, RENAME, COMMENT.
 */
export const SQL_VERBS: ReadonlySet<string> = new Set([
  'SELECT', 'INSERT', 'UPDATE', 'DELETE', 'MERGE', 'UPSERT', 'REPLACE', 'COPY', 'CREATE', 'ALTER', 'DROP', 'TRUNCATE',
  'RENAME', 'COMMENT', 'GRANT', 'REVOKE', 'BEGIN', 'START', 'COMMIT', 'ROLLBACK', 'SAVEPOINT', 'RELEASE', 'END', 'ABORT',
  'SET', 'SHOW', 'RESET', 'EXPLAIN', 'ANALYZE', 'VACUUM', 'CLUSTER', 'REINDEX', 'LOCK', 'UNLOCK', 'DO', 'CALL', 'EXECUTE',
  'PREPARE', 'DEALLOCATE', 'DECLARE', 'FETCH', 'MOVE', 'CLOSE', 'LISTEN', 'NOTIFY', 'UNLISTEN', 'DISCARD', 'CHECKPOINT',
  'LOAD', 'REFRESH', 'SECURITY', 'IMPORT', 'VALUES', 'TABLE', 'USE', 'DESCRIBE', 'DESC', 'HANDLER', 'KILL', 'FLUSH',
  'OPTIMIZE', 'REPAIR', 'CHECK', 'CHECKSUM', 'INSTALL', 'UNINSTALL', 'SHUTDOWN', 'HELP', 'XA', 'BINLOG', 'PURGE',
  'CHANGE', 'STOP', 'BACKUP', 'SIGNAL', 'RESIGNAL', 'GET', 'DDL',
]);

const DDL_VERBS = ['CREATE', 'ALTER', 'DROP', 'TRUNCATE', 'RENAME', 'COMMENT'];

const SQL_FORMATS: Readonly<Record<string, FormatCheck>> = {
  'sql-verb': (s) => (SQL_VERBS.has(s.toUpperCase()) ? null : `'${s}' is not a statement verb (e.g. SELECT, INSERT, UPDATE, DELETE, DDL, COPY, CREATE, DROP)`),
};

function namePattern(what: string): JsonSchema {
  return str({
    minLength: 1,
    maxLength: 128,
    // \x escapes: understood by ajv (JS) and by Go's regexp, which Helm validates values with.
    pattern: '^[^\\x00-\\x1f]*$',
    'x-messages': Object.fromEntries(['minLength', 'maxLength', 'pattern'].map((k) => [k, `'{value}' is not a ${what} name pattern (1–128 characters, '*' matches any)`])),
  });
}

/** The `<name>: {users, databases, statements}` block; `name` is the protocol and the facts' key. */
export function sqlRuleBlock(name: string): RuleBlockPlugin<SqlBlock, SqlFacts> {
  return {
    key: name,
    protocols: [name],
    schema: blockSchema(name, {
      users: oneOrList(namePattern('user')),
      databases: oneOrList(namePattern('database')),
      statements: oneOrList(str({ format: 'sql-verb' })),
    }),
    formats: SQL_FORMATS,
    normalize: (block) => normalizeLists(block, { statements: (s) => s.toUpperCase() }),
    compile: (block) => {
      const users = block.users === undefined ? null : compileGlobs('plain', block.users);
      const databases = block.databases === undefined ? null : compileGlobs('plain', block.databases);
      const statements = block.statements === undefined ? null : new Set(block.statements.flatMap((v) => (v === 'DDL' ? DDL_VERBS : [v])));
      return (sql, action) => {
        // Encrypted before user and database were seen: nothing is known, only a deny can apply.
        if (sql.encrypted === true && (users !== null || databases !== null || statements !== null)) return action === 'deny';
        if (users !== null && (sql.user === undefined || !globMatches(users, sql.user))) return false;
        if (databases !== null && (sql.database === undefined || !globMatches(databases, sql.database))) return false;
        if (statements !== null) {
          // At the session's start no statement is known yet: an allow rule may admit the session
          // (each statement is decided later), a deny rule for statements does not refuse it.
          if (sql.statement === undefined) return action !== 'deny';
          return statements.has(sql.statement);
        }
        return true;
      };
    },
  };
}
