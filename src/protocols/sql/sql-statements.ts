// The statements of a SQL query text and their verbs, for `statements:` rules. A lexer, not a
// parser: it finds what separates statements (top-level ';') and what hides text (literals,
// quoted identifiers, comments) the way the server's lexer does —
//   PostgreSQL (scan.l): '--' and nested '/* */' comments, '...' with '' (and, when
//   standard_conforming_strings is off or for E'...', backslash escapes), "..." identifiers,
//   $tag$...$tag$ dollar quotes (a tag does not start with a digit: $1 is a parameter);
//   MySQL/MariaDB (sql_lex.cc): '#' and '-- ' (dash dash + whitespace) comments, '/* */' not
//   nested, '/*!ddddd ... */' and '/*M!ddddd ... */' whose content the server EXECUTES (read as
//   code here), '...' and "..." strings with backslash escapes (unless NO_BACKSLASH_ESCAPES)
//   and doubled quotes, `...` identifiers.
// Where a session setting changes the lexing (PostgreSQL standard_conforming_strings, MySQL
// NO_BACKSLASH_ESCAPES), the text is read both ways and the statements of both are kept: a
// statement one reading hides is still decided (fail closed: more statements, never fewer).
//
// Verbs: the leading keyword of each statement after '(' — plus, for statements that carry
// another (WITH x AS (DELETE ...) SELECT, EXPLAIN ANALYZE DELETE, PREPARE p AS UPDATE, CREATE
// TABLE t AS SELECT), every DML keyword that follows '(', ')', AS, ANALYZE or VERBOSE. A
// statement may have several verbs; each is decided. What hides inside a DO block, a function
// body or a prepared statement's EXECUTE is not seen (deny DO/CALL/EXECUTE, or allow-list verbs).

export type SqlDialect = 'postgres' | 'mysql';

export interface SqlStatement {
  /** Upper-cased verbs, the leading one first. */
  readonly verbs: readonly string[];
  /** Table names after FROM, JOIN, INTO, UPDATE, TABLE (lower-cased, at most 8), for records and learning. */
  readonly tables: readonly string[];
  /** The name right after the leading verb (`USE shop` → 'shop'), if it is one. */
  readonly target?: string;
}

const NESTED_VERBS = new Set(['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'MERGE', 'VALUES', 'TABLE', 'REPLACE']);
const NESTED_AFTER = new Set(['(', ')', 'AS', 'ANALYZE', 'VERBOSE']);
const TABLE_AFTER = new Set(['FROM', 'JOIN', 'INTO', 'UPDATE', 'TABLE', 'TRUNCATE']);
const NOT_TABLES = new Set(['SELECT', 'ONLY', 'LATERAL', 'IF', 'EXISTS', 'NOT', 'TABLE', 'STDIN', 'STDOUT', 'SET', 'IGNORE', 'LOW_PRIORITY', 'DELAYED', 'HIGH_PRIORITY', 'QUICK', 'OUTFILE', 'DUMPFILE']);
const MAX_TABLES = 8;

type Token = { kind: 'word'; text: string; raw: string } | { kind: 'name'; text: string } | { kind: 'punct'; text: string };

/** Statements of `sql` (empty ones left out), read every way the session could lex it. */
export function splitStatements(sql: string, dialect: SqlDialect): SqlStatement[] {
  const a = lex(sql, dialect, false);
  const out = a.map(describe);
  // Without a backslash both readings are the same.
  if (!sql.includes('\\')) return out.filter((s) => s.verbs.length > 0);
  const b = lex(sql, dialect, true);
  // The other reading: any statement it finds that the first did not is added.
  const seen = new Set(out.map((s) => s.verbs.join(' ')));
  for (const s of b.map(describe)) {
    const key = s.verbs.join(' ');
    if (!seen.has(key)) {
      out.push(s);
      seen.add(key);
    }
  }
  return out.filter((s) => s.verbs.length > 0);
}

/** Every verb of every statement, de-duplicated, in order. */
export function statementVerbs(statements: readonly SqlStatement[]): string[] {
  return [...new Set(statements.flatMap((s) => s.verbs))];
}

function describe(tokens: Token[]): SqlStatement {
  const verbs: string[] = [];
  const tables: string[] = [];
  let i = 0;
  while (i < tokens.length && tokens[i]!.kind === 'punct' && tokens[i]!.text === '(') i++;
  const lead = tokens[i];
  if (lead === undefined) return { verbs, tables };
  verbs.push(lead.kind === 'word' ? lead.text : lead.kind === 'punct' ? lead.text : 'IDENTIFIER');
  const after = tokens[i + 1];
  const target = after !== undefined && after.kind !== 'punct' ? (after.kind === 'name' ? after.text : after.raw) : undefined;
  for (let k = i + 1; k < tokens.length; k++) {
    const t = tokens[k]!;
    const prev = tokens[k - 1]!;
    if (t.kind === 'word' && NESTED_VERBS.has(t.text) && (prev.kind === 'punct' || prev.kind === 'word') && NESTED_AFTER.has(prev.text)) {
      if (!verbs.includes(t.text)) verbs.push(t.text);
    }
    if (prev.kind === 'word' && TABLE_AFTER.has(prev.text) && (t.kind === 'name' || (t.kind === 'word' && !NOT_TABLES.has(t.text)))) {
      let name = t.text.toLowerCase();
      // schema.table
      while (tokens[k + 1]?.text === '.' && tokens[k + 2] !== undefined && tokens[k + 2]!.kind !== 'punct') {
        name += `.${tokens[k + 2]!.text.toLowerCase()}`;
        k += 2;
      }
      if (tables.length < MAX_TABLES && !tables.includes(name)) tables.push(name);
    }
  }
  return target === undefined ? { verbs, tables } : { verbs, tables, target };
}

const isWordStart = (c: number): boolean => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f || c >= 0x80;
const isWordChar = (c: number): boolean => isWordStart(c) || (c >= 0x30 && c <= 0x39) || c === 0x24;
const isSpace = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0b || c === 0x0c;

/**
 * Token lists, one per statement. `alt`: the other reading of the session setting (PostgreSQL:
 * backslash escapes in '...' — standard_conforming_strings off; MySQL: no backslash escapes).
 */
function lex(sql: string, dialect: SqlDialect, alt: boolean): Token[][] {
  const pg = dialect === 'postgres';
  const backslashInStrings = pg ? alt : !alt;
  const statements: Token[][] = [];
  let cur: Token[] = [];
  const n = sql.length;
  let i = 0;
  /** MySQL: inside /*! ... *\/, whose content is code. */
  let inExecComment = false;
  const quoted = (q: string, backslash: boolean): string => {
    // i is at the opening quote; returns the content, leaves i after the closing quote (or at the end).
    let text = '';
    i++;
    while (i < n) {
      const c = sql[i]!;
      if (backslash && c === '\\') {
        text += sql[i + 1] ?? '';
        i += 2;
        continue;
      }
      if (c === q) {
        if (sql[i + 1] === q) {
          text += q;
          i += 2;
          continue;
        }
        i++;
        return text;
      }
      text += c;
      i++;
    }
    return text; // unterminated: the server refuses the query; what came before is still decided
  };
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (isSpace(c)) {
      i++;
      continue;
    }
    const ch = sql[i]!;
    const next = sql[i + 1];
    if (ch === '-' && next === '-' && (pg || i + 2 >= n || isSpace(sql.charCodeAt(i + 2)) || sql.charCodeAt(i + 2) < 0x20)) {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? n : nl + 1;
      continue;
    }
    if (!pg && ch === '#') {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? n : nl + 1;
      continue;
    }
    if (ch === '/' && next === '*') {
      if (!pg && (sql[i + 2] === '!' || (sql[i + 2] === 'M' && sql[i + 3] === '!'))) {
        // Executable comment: its content is read as code.
        i += sql[i + 2] === '!' ? 3 : 4;
        while (i < n && /[0-9]/.test(sql[i]!)) i++;
        inExecComment = true;
        continue;
      }
      if (pg) {
        let depth = 1;
        i += 2;
        while (i < n && depth > 0) {
          if (sql[i] === '/' && sql[i + 1] === '*') {
            depth++;
            i += 2;
          } else if (sql[i] === '*' && sql[i + 1] === '/') {
            depth--;
            i += 2;
          } else i++;
        }
      } else {
        const end = sql.indexOf('*/', i + 2);
        i = end < 0 ? n : end + 2;
      }
      continue;
    }
    if (!pg && inExecComment && ch === '*' && next === '/') {
      inExecComment = false;
      i += 2;
      continue;
    }
    if (ch === ';') {
      statements.push(cur);
      cur = [];
      i++;
      continue;
    }
    if (ch === "'") {
      cur.push({ kind: 'punct', text: "'" });
      quoted("'", backslashInStrings);
      continue;
    }
    if (pg && (ch === 'E' || ch === 'e') && next === "'") {
      i++;
      cur.push({ kind: 'punct', text: "'" });
      quoted("'", true);
      continue;
    }
    if (ch === '"') {
      if (pg) cur.push({ kind: 'name', text: quoted('"', false) });
      else {
        // MySQL: a string (a quoted identifier under ANSI_QUOTES; it splits the same way).
        cur.push({ kind: 'punct', text: "'" });
        quoted('"', backslashInStrings);
      }
      continue;
    }
    if (!pg && ch === '`') {
      cur.push({ kind: 'name', text: quoted('`', false) });
      continue;
    }
    if (pg && ch === '$') {
      // $tag$ ... $tag$ (tag: identifier characters, not starting with a digit), or $n.
      const m = /^\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/.exec(sql.slice(i, i + 66));
      if (m !== null) {
        const tag = m[0];
        const end = sql.indexOf(tag, i + tag.length);
        i = end < 0 ? n : end + tag.length;
        cur.push({ kind: 'punct', text: "'" });
        continue;
      }
    }
    if (isWordStart(c)) {
      let j = i + 1;
      while (j < n && isWordChar(sql.charCodeAt(j))) j++;
      cur.push({ kind: 'word', text: sql.slice(i, j).toUpperCase(), raw: sql.slice(i, j) });
      i = j;
      continue;
    }
    if (c >= 0x30 && c <= 0x39) {
      let j = i + 1;
      while (j < n && (isWordChar(sql.charCodeAt(j)) || sql[j] === '.')) j++;
      cur.push({ kind: 'punct', text: '0' });
      i = j;
      continue;
    }
    cur.push({ kind: 'punct', text: ch });
    i++;
  }
  statements.push(cur);
  return statements.filter((s) => s.length > 0);
}

/** A learning template of a statement: its verbs and tables (`SELECT users,orders`). */
export function statementTemplate(s: SqlStatement): string {
  return s.tables.length === 0 ? s.verbs.join(' ') : `${s.verbs.join(' ')} ${s.tables.join(',')}`;
}
