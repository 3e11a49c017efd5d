// A toy protocol living only in the tests: what a newcomer writes for a new protocol (one folder,
// see src/protocols/README.md "Adding a protocol"), registered with one call.
//
// TOY: the client sends lines `TOY <verb> <arg>\r\n`; the server answers a line per command.
// Rule block `toy: {verbs: [...]}`; a denied command is answered `-DENIED <rule>` and never
// reaches the server.
import { messageEnforcer } from '../../../../src/enforcement/message-enforcer.js';
import { match, MORE, prefixState, UNKNOWN } from '../../../../src/protocols/detect-util.js';
import { HeadTooLargeError, MalformedStreamError } from '../../../../src/protocols/errors.js';
import type { Detection, ProtocolPlugin } from '../../../../src/protocols/plugin.js';
import { StreamParserBase } from '../../../../src/protocols/stream-parser-base.js';
import { templateLearning } from '../../../../src/learn/templates.js';
import type { Side } from '../../../../src/protocols/types.js';

const SIGNATURE = Buffer.from('TOY ', 'latin1');
const MAX_LINE = 256;

/** Detection: the first four bytes are `TOY `. */
function detectToy(bytes: Buffer): Detection<'toy'> {
  const state = prefixState(bytes, SIGNATURE);
  return state === 'full' ? match('toy', 'high') : state === 'partial' ? MORE : UNKNOWN;
}

/** The parser: one `message` event per client line, covering its bytes. */
class ToyParser extends StreamParserBase {
  readonly protocol = 'toy';
  private line: Buffer[] = [];
  private lineLength = 0;
  private lineStart = 0;

  protected parse(side: Side, chunk: Buffer, base: number): void {
    if (side === 'server') return; // answers are not interpreted
    let pos = 0;
    while (pos < chunk.length) {
      if (this.lineLength === 0) this.lineStart = base + pos;
      const nl = chunk.indexOf(0x0a, pos);
      const piece = chunk.subarray(pos, nl < 0 ? chunk.length : nl + 1);
      this.line.push(piece);
      this.lineLength += piece.length;
      pos += piece.length;
      if (this.lineLength > MAX_LINE) this.fail(HeadTooLargeError, side, this.lineStart, `line longer than ${MAX_LINE} bytes`);
      if (nl < 0) return;
      const text = Buffer.concat(this.line).toString('latin1').replace(/\r?\n$/, '');
      const m = /^TOY ([A-Z]+) (\S*)$/.exec(text);
      if (m === null) this.fail(MalformedStreamError, side, this.lineStart, `not a TOY command: ${JSON.stringify(text.slice(0, 40))}`);
      this.emit({ type: 'message', protocol: 'toy', name: 'toy.command', side, start: this.lineStart, end: this.lineStart + this.lineLength, fields: { verb: m[1]!, arg: m[2]! } });
      this.line = [];
      this.lineLength = 0;
    }
  }

  protected finish(side: Side, offset: number): void {
    if (side === 'client' && this.lineLength > 0) this.truncated(side, offset, 'a TOY command');
  }
}

interface ToyBlock {
  verbs: string[];
}

export const toyProtocol: ProtocolPlugin<'toy'> = {
  name: 'toy',
  detectClient: detectToy,
  createParser: () => new ToyParser(),
  enforcer: messageEnforcer({
    read: (ev) => {
      if (ev.type !== 'message' || ev.name !== 'toy.command') return null;
      const verb = String(ev.fields.verb);
      return { facts: { toy: { verb } }, record: { verb, arg: String(ev.fields.arg) } };
    },
    deny: (decision) => Buffer.from(`-DENIED ${decision.ruleId}\r\n`, 'latin1'),
  }),
  ruleBlock: {
    key: 'toy',
    // What ajv checks (src/schema/validator.ts): `x-messages` are the texts `policy check` prints.
    schema: {
      type: 'object',
      additionalProperties: false,
      properties: {
        verbs: {
          type: 'array',
          minItems: 1,
          items: { type: 'string', pattern: '^([A-Za-z]+|\\*)$', 'x-messages': { pattern: "'{value}' is not a TOY verb (letters, or * for any)" } },
          'x-messages': { minItems: 'must list at least one verb', type: 'must be a list of verbs, not {describe}' },
        },
      },
    },
    protocols: ['toy'],
    normalize: (block) => ({ verbs: [...new Set((block.verbs as string[]).map((v) => v.toUpperCase()))] }),
    compile: (block: ToyBlock) => {
      const verbs = new Set(block.verbs);
      return (facts: { verb: string }) => verbs.has('*') || verbs.has(facts.verb);
    },
  } as ProtocolPlugin['ruleBlock'],
  learn: templateLearning(
    'toy',
    (l7) => (typeof l7.verb === 'string' ? [l7.verb] : null),
    (templates) => ({ verbs: [...new Set(templates.map((t) => t[0] ?? '*'))].sort() }),
  ),
  describe: (l7) => `${String(l7.verb)} ${String(l7.arg)}`,
  // Its records' l7 fields: the flow-record schema admits these for protocol toy.
  recordFields: {
    verb: { type: 'string', pattern: '^[A-Z]+$', description: 'The command verb.' },
    arg: { type: 'string', description: 'Its argument.' },
  },
};
