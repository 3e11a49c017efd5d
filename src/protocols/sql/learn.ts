// SQL database learning (postgres, mysql): the users, databases and statement verbs seen; one
// `<protocol>: {users, databases, statements}` rule, or the protocol alone for sessions that
// showed none (an encrypted one).
import type { LearnPlugin } from '../plugin.js';

const VERB = /^[A-Z]{2,20}$/;

function text(v: unknown): string | null {
  return typeof v === 'string' && v.length > 0 && v.length <= 128 && !/[\u0000-\u001f*]/.test(v) ? v : null;
}

export function sqlLearning(protocol: string): LearnPlugin {
  return {
    // Connections too: an encrypted session is learned as the protocol.
    family: (record) => record.protocol,
    observe: (record, _family, into) => {
      if (record.type !== 'request') return;
      const l7 = record.l7;
      const user = text(l7.user);
      const database = text(l7.database);
      if (user !== null) into.value('users', user);
      if (database !== null) into.value('databases', database);
      const verbs = Array.isArray(l7.statements) ? l7.statements : [];
      for (const v of verbs) if (typeof v === 'string' && VERB.test(v)) into.value('statements', v);
    },
    rules: (entry) => {
      const stats = { count: entry.count, first: entry.first, last: entry.last };
      if (entry.valueSets().length === 0) return [{ protocol, specificity: 50, unit: 'connections', ...stats }];
      const block: Record<string, string[]> = {};
      const users = entry.values('users');
      const databases = entry.values('databases');
      const statements = entry.values('statements');
      // A saved model's values are checked again (observing checked them when they were seen).
      const list = (values: readonly string[] | undefined, ok: (v: string) => boolean): string[] => (values ?? []).filter(ok).sort();
      const u = list(users, (v) => text(v) !== null);
      const d = list(databases, (v) => text(v) !== null);
      const s = list(statements, (v) => VERB.test(v));
      if (u.length > 0) block.users = u;
      if (d.length > 0) block.databases = d;
      if (s.length > 0) block.statements = s;
      return [{ protocol, block: { key: protocol, value: block }, specificity: 100, unit: 'queries', ...stats }];
    },
    // `postgres SELECT, INSERT`; a session (no statement yet) is a connection.
    phrase: ({ l7 }) => {
      const verbs = Array.isArray(l7.statements) ? l7.statements.filter((v): v is string => typeof v === 'string') : [];
      return verbs.length > 0 ? `${protocol} ${verbs.join(', ')}` : null;
    },
  };
}
