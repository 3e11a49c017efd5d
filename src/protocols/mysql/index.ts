// MySQL/MariaDB: the server speaks first (handshake v10, no client-side stall), the packet
// parser, and a verdict on the login (user, database) and per statement
// (mysql-enforcer.ts).
import { MysqlEnforcer } from './mysql-enforcer.js';
import type { ProtocolPlugin } from '../plugin.js';
import { sqlLearning } from '../sql/learn.js';
import { MYSQL_RECORD_FIELDS } from '../sql/record-fields.js';
import { sqlRuleBlock } from '../sql/rule-block.js';
import { detectMysqlGreeting } from './detect.js';
import { MysqlParser } from './mysql-parser.js';

export const mysqlProtocol = {
  name: 'mysql',
  detectGreeting: detectMysqlGreeting,
  // The server speaks first: client bytes on a port declared mysql that detection did not
  // recognise are not read as MySQL (as before the parser existed).
  declaredAs: [],
  createParser: () => new MysqlParser(),
  enforcer: (deps) => new MysqlEnforcer(deps),
  ruleBlock: sqlRuleBlock('mysql') as ProtocolPlugin['ruleBlock'],
  learn: sqlLearning('mysql'),
  recordFields: MYSQL_RECORD_FIELDS,
} as const satisfies ProtocolPlugin<'mysql'>;
