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
  /**
   * Likely mistakes in a valid block (`sidewall policy check` prints them as WARNING and exits
   * 0), `field` inside the block (e.g. 'paths').
   */
  warnings?(block: Block): ReadonlyArray<{ readonly field: string; readonly message: string }>;
}

/** How a learned template trie folds (learn/template-trie.ts): path segments, name labels (TLD first: the registrable part never folds), or plain parts. */
export type TemplateKind = 'path' | 'name' | 'plain';

/** What a protocol's learning records of one observation into its entry (bounded by the model). */
export interface LearnRecorder {
  /** A template into the named trie (`tag`, e.g. an HTTP method, is kept per template; `deep`: the parts were cut, a '**' glob). */
  template(trie: string, parts: readonly string[], options?: { readonly tag?: string; readonly deep?: boolean }): void;
  /** A value into the named set (at most 64 per set; sets beyond the model's bound share the set '*'). */
  value(set: string, value: string): void;
  /** A named flag (e.g. 'unnamed': a request without a usable name). */
  flag(name: string): void;
  /** Nothing usable in this observation (counted as dropped). */
  drop(): void;
}

/** One learned template with its statistics (times in epoch ms). */
export interface LearnedTemplate {
  readonly parts: readonly string[];
  readonly deep: boolean;
  readonly tags: ReadonlySet<string>;
  readonly count: number;
  readonly first: number;
  readonly last: number;
}

/** What the model learned for one (direction, peer, port, family), as a protocol's learning reads it. */
export interface LearnedEntry {
  readonly family: string;
  /** The record protocols seen (e.g. http and http2 in the family http). */
  readonly protocols: ReadonlySet<string>;
  readonly count: number;
  readonly first: number;
  readonly last: number;
  templates(trie: string): readonly LearnedTemplate[];
  /** The named set's values in the order first seen; undefined when none was recorded. */
  values(set: string): readonly string[] | undefined;
  /** The names of the value sets recorded, sorted. */
  valueSets(): readonly string[];
  flag(name: string): boolean;
}

/** One rule a protocol's learning proposes (the learner adds id, direction, peer and port). */
export interface LearnedDraft {
  readonly protocol: string;
  /** The rule's L7 block (absent: a rule on the protocol alone). */
  readonly block?: { readonly key: string; readonly value: Readonly<Record<string, unknown>> };
  /** Appended to the rule's id to tell this entry's rules apart. */
  readonly id?: string;
  /** Rules are ordered most specific first: 100 and up for L7 blocks, 50 for the protocol alone (the peer's precision is added). */
  readonly specificity: number;
  /** What `count` counts (requests, calls, connections...), for the rule's description. */
  readonly unit: string;
  readonly count: number;
  readonly first: number;
  readonly last: number;
}

/** The record fields a protocol's learning reads. */
export interface LearnObservation {
  readonly type: string;
  readonly protocol: string;
  readonly l7: Readonly<Record<string, unknown>>;
}

/**
 * How the learner (src/learn) templates a protocol's records and turns what it learned into
 * rules. The model keeps, per entry, bounded named template tries, value sets and flags; the
 * protocol says what goes in (`observe`) and what rules come out (`rules`).
 */
export interface LearnPlugin {
  /**
   * The family a record learns under (entries are per family; its rules come from the family's
   * plugin, `pluginForRecord(family).learn`); null: the record teaches nothing (a connection
   * whose requests are learned). Default: requests under their protocol, connections not.
   */
  family?(record: { readonly type: string; readonly protocol: string }): string | null;
  /** The kinds of its tries (default 'plain'). */
  readonly tries?: Readonly<Record<string, TemplateKind>>;
  observe(record: LearnObservation, family: string, into: LearnRecorder): void;
  rules(entry: LearnedEntry): readonly LearnedDraft[];
  /**
   * What a denied record did, for the new-behaviour alert (`new behaviour: PHRASE egress to ...`,
   * learn/learner.ts), e.g. `gRPC shop.Cart/Add`; null (or absent): `<protocol> connection`.
   */
  phrase?(record: LearnObservation): string | null;
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
  /** Its enforcer scans request and response content with DLP: rules' `dlp` matchers fit its rule protocols. */
  readonly scansContent?: boolean;
  /** The rule block this protocol adds, if any. */
  readonly ruleBlock?: RuleBlockPlugin<never, never>;
  /** How the learner templates its records into rules (src/learn reads nothing else of a protocol). */
  readonly learn?: LearnPlugin;
  /**
   * The `l7` fields of its flow records (those whose protocol is its name or one of its
   * ruleProtocols), one JSON Schema per field, each with a description: the flow-record schema
   * (src/schema/flow-record.ts, written to schema/flow-record.schema.json by the build) admits
   * exactly these (and the fields every connection may carry: detection, parseError).
   */
  readonly recordFields?: Readonly<Record<string, JsonSchema>>;
  /** One phrase for a record's l7 fields (`sidewall observe`'s detail column; `compact`: the destination column already names the host). */
  readonly describe?: (l7: Readonly<Record<string, unknown>>, compact: boolean) => string;
}

/** For plugin authors: the events of this plugin's parser, narrowed by type prefix. */
export type EventsOf<T extends ProtocolEvent['type']> = Extract<ProtocolEvent, { type: T }>;
