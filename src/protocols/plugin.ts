// What a protocol exports to the rest of the system: one object per protocol, in its own folder
// (src/protocols/<name>/index.ts), listed once in registry.ts. Detection, the connection filter,
// the rules, the records and the learner iterate the registry; none of them names a protocol.
// See README.md "Adding a protocol".
import type { EnforcerDeps, ProtocolEnforcer } from '../enforcement/types.js';
import type { ProtocolEvent, StreamParser } from './types.js';

export type DetectConfidence = 'high' | 'medium' | 'low';

export type Detection<P extends string> =
  | { readonly kind: 'match'; readonly protocol: P; readonly confidence: DetectConfidence }
  | { readonly kind: 'more' }
  | { readonly kind: 'unknown' };

/** A JSON Schema (draft-07) object, as the rules' schema assembles it. */
export type JsonSchema = { readonly [keyword: string]: unknown };

/** The rule block a protocol adds to rules (`<key>: {...}`), e.g. `redis: {commands, keys}`. */
export interface RuleBlockPlugin<Block = Record<string, unknown>, Facts = unknown> {
  /** The rule's field name, and the key of the L7 facts the protocol's enforcer decides with. */
  readonly key: string;
  /**
   * The block's JSON Schema fragment (draft-07; `x-messages` give the error texts, see
   * src/schema/validator.ts): the rules' schema assembles it, ajv checks it.
   */
  readonly schema: JsonSchema;
  /** Named string formats the schema uses (`format: NAME`), each check returning the user's message or null. */
  readonly formats?: Readonly<Record<string, (value: string) => string | null>>;
  /** Rule protocols the block may be combined with; the first is the protocol it implies. */
  readonly protocols: readonly string[];
  /** The block as `compile` reads it (case folded, deduplicated), once it validated. Default: as given. */
  readonly normalize?: (block: Record<string, unknown>) => Record<string, unknown>;
  /**
   * Compiles a block once into its matcher. `action`: a deny rule may apply where facts are
   * missing (fail closed), an allow rule may not.
   */
  compile(block: Block): (facts: Facts, action: 'allow' | 'deny' | 'pass') => boolean;
}

/** How the learner turns request records into a rule block (learn/model.ts, learn/rules.ts). */
export interface LearnPlugin {
  /** The learnable shape of one request record: template parts (e.g. ['GET', 'session']), or null. */
  parts(l7: Readonly<Record<string, unknown>>): readonly string[] | null;
  /** Learned templates (the parts, '*' where values varied) back into a rule block. */
  block(templates: ReadonlyArray<readonly string[]>): Record<string, unknown>;
}

export interface ProtocolPlugin<N extends string = string> {
  readonly name: N;
  /** Client-first: the first ≤ 24 client bytes → match / more / unknown. */
  readonly detectClient?: (bytes: Buffer) => Detection<N>;
  /**
   * Detection cut short (timeout or client FIN) on these bytes: `match` when they can only be
   * this protocol's start (its parser then reads them, a split request does not pass as TCP),
   * `more` when they could still become it. Default: `detectClient`; null: never chosen on a cut.
   */
  readonly detectCut?: ((bytes: Buffer) => Detection<N>) | null;
  /** Server-first: the server's greeting (≤ 512 bytes) → match / more / unknown. */
  readonly detectGreeting?: (bytes: Buffer) => Detection<N>;
  /** `ports:` declarations this protocol's parser reads when detection fails (default: [name]). */
  readonly declaredAs?: readonly string[];
  /**
   * Protocol verification: per `ports:` declaration this protocol answers to, what detection may
   * report there (default `{[name]: [name]}`); anything else is a protocol mismatch.
   */
  readonly verify?: Readonly<Record<string, readonly string[]>>;
  /** Protocols that may legitimately share a port belong to one family (http2's is 'http'; default: its name). */
  readonly family?: string;
  /** Rule protocols this one answers to besides its name (http2: grpc). */
  readonly ruleProtocols?: readonly string[];
  /** A fresh incremental parser for one connection; absent: detected only, decided as a whole. */
  readonly createParser?: () => StreamParser;
  /** Turns the parser's events into operations; required with a parser. */
  readonly enforcer?: (deps: EnforcerDeps) => ProtocolEnforcer;
  /** The rule block this protocol adds, if any. */
  readonly ruleBlock?: RuleBlockPlugin<never, never>;
  /** How the learner templates its requests (with `ruleBlock`). */
  readonly learn?: LearnPlugin;
  /** One phrase for a record's l7 fields (`sidewall observe`'s detail column; `compact`: the destination column already names the host). */
  readonly describe?: (l7: Readonly<Record<string, unknown>>, compact: boolean) => string;
}

/** For plugin authors: the events of this plugin's parser, narrowed by type prefix. */
export type EventsOf<T extends ProtocolEvent['type']> = Extract<ProtocolEvent, { type: T }>;
