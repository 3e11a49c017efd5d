// One way to validate every settings document sidewall reads (rules, the sidecar config, the
// injector settings, the chart values): a JSON Schema (draft-07, the draft Helm's values.schema.json
// uses) compiled once with ajv, and ajv's errors translated into the messages `sidewall policy
// check` has always printed: the path of the field, what is wrong, and how to fix it.
//
// Schemas are plain data so the chart can embed them. Field-specific wording lives in the schema
// under "x-messages" ({keyword: text}); `{value}`, `{show}` and `{describe}` in the text stand for
// the offending value raw, quoted, and described ("a mapping"). Checks JSON Schema cannot say
// (a CIDR's host bits, a glob's syntax) are named formats whose check returns the message.
//
// Start time: compiling a schema with ajv costs 0.1–0.4 s (the rule schema most), at every start
// of the proxy and of `sidewall policy check`. So `npm run build` writes each schema's validator
// as code (ajv's standalone generation, src/schema/standalone.ts, into src/schema/generated/), and
// compileSchema uses that code when it was generated from the very same schema (a hash of it);
// otherwise (a protocol registered at run time, a generated file not rebuilt yet) it compiles with
// ajv as before. Both paths run the same checks and translate errors the same way.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { compileFunction } from 'node:vm';
import type { Ajv, ErrorObject, Options as AjvOptions } from 'ajv';

/** A JSON Schema object (draft-07) as plain data. */
export type JsonSchema = { [keyword: string]: unknown };

/** A format check: null when the string is fine, else the message (without the field). */
export type FormatCheck = (value: string) => string | null;

export interface SchemaIssue {
  /** Path segments from the document root: keys and list indexes. */
  path: Array<string | number>;
  /** The path written as 'peer.cidr[1]' ('' for the document itself). */
  field: string;
  message: string;
}

export interface CompiledSchema {
  /** Every problem in `data`, in document order; [] when it validates. */
  issues(data: unknown): SchemaIssue[];
  readonly validate: SchemaValidateFunction;
  /** 'generated': the build's standalone code; 'compiled': ajv at run time. */
  readonly origin: 'generated' | 'compiled';
}

/** What a validator is, compiled or generated: true or false, and the errors of the last call. */
export type SchemaValidateFunction = ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };

/** A format as ajv takes it (the generated code calls `.validate`). */
export type AjvFormat = { type: 'string'; validate: (value: string) => boolean };

/** A validator generated at build time (src/schema/generated/*.ts). */
export interface GeneratedValidator {
  /** schemaHash() of the schema it was generated from. */
  readonly hash: string;
  /** The validate function, given the formats by name. */
  create(formats: Readonly<Record<string, AjvFormat>>): SchemaValidateFunction;
}

/** The keyword schemas carry their error wording under. */
export const MESSAGES_KEYWORD = 'x-messages';

export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'empty';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the string '${value.length > 40 ? value.slice(0, 40) + '…' : value}'`;
  return `${typeof value} ${String(value)}`;
}

/** Short form: strings quoted, the rest as describeValue (for "must be one of a, b, not 'c'"). */
export function showValue(value: unknown): string {
  if (typeof value === 'string') return `'${value.length > 60 ? value.slice(0, 60) + '…' : value}'`;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return describeValue(value);
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

/** "unknown key 'prots' (did you mean 'ports'?)" or the list of allowed keys. */
export function unknownKeyMessage(key: string, allowed: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of allowed) {
    const d = editDistance(key, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  if (best !== undefined && bestDistance <= 2 && bestDistance < best.length / 2) return `unknown key '${key}' (did you mean '${best}'?)`;
  return `unknown key '${key}' (allowed: ${allowed.join(', ')})`;
}

/** 'peer.cidr[1]' from ['peer', 'cidr', 1]. */
export function fieldOf(path: ReadonlyArray<string | number>): string {
  let field = '';
  for (const part of path) {
    if (typeof part === 'number') field += `[${part}]`;
    else field = field === '' ? part : `${field}.${part}`;
  }
  return field;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** JSON pointer → segments, indexes as numbers where the data there is a list. */
function pathOf(pointer: string, root: unknown): Array<string | number> {
  if (pointer === '') return [];
  const path: Array<string | number> = [];
  let node: unknown = root;
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node) && /^\d+$/.test(key)) {
      path.push(Number(key));
      node = node[Number(key)];
    } else {
      path.push(key);
      node = isRecord(node) ? node[key] : undefined;
    }
  }
  return path;
}

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  boolean: 'true or false',
  integer: 'a whole number',
  number: 'a number',
  object: 'a mapping',
  array: 'a list',
  null: 'empty',
};

const COMPARISONS: Record<string, string> = { '>=': 'at least', '<=': 'at most', '>': 'more than', '<': 'less than' };

function fill(template: string, value: unknown): string {
  return template
    .replace(/\{value\}/g, typeof value === 'string' ? value : String(value))
    .replace(/\{show\}/g, showValue(value))
    .replace(/\{describe\}/g, describeValue(value));
}

function messagesOf(schema: unknown): Record<string, string> {
  if (!isRecord(schema)) return {};
  const messages = schema[MESSAGES_KEYWORD];
  return isRecord(messages) ? (messages as Record<string, string>) : {};
}

/** The message for one ajv error, or null for errors that only repeat an inner one. */
function translate(error: ErrorObject, formats: Readonly<Record<string, FormatCheck>>): { extra?: string; message: string } | null {
  const custom = messagesOf(error.parentSchema);
  const data: unknown = error.data;
  const params = error.params as Record<string, unknown>;
  const own = custom[error.keyword];
  switch (error.keyword) {
    case 'if':
    case 'propertyNames':
      return null;
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const properties = isRecord(error.parentSchema) && isRecord(error.parentSchema.properties) ? Object.keys(error.parentSchema.properties) : [];
      if (own !== undefined) return { extra: key, message: fill(own, key) };
      return { extra: key, message: properties.length === 0 ? `unknown key '${key}'` : unknownKeyMessage(key, properties) };
    }
    case 'required': {
      // On the object itself: one message for the object (e.g. "must be {namespace, name}").
      if (own !== undefined) return { message: fill(own, data) };
      const key = String(params.missingProperty);
      const properties = isRecord(error.parentSchema) && isRecord(error.parentSchema.properties) ? error.parentSchema.properties : {};
      return { extra: key, message: messagesOf(properties[key]).required ?? 'is required' };
    }
    case 'type': {
      if (own !== undefined) return { message: fill(own, data) };
      const types = String(params.type).split(',');
      const words = types.map((t) => TYPE_WORDS[t] ?? t);
      const hint = types.includes('string') && (typeof data === 'number' || typeof data === 'boolean') ? ` (quote it: "${String(data)}")` : '';
      return { message: `must be ${words.join(' or ')}, not ${describeValue(data)}${hint}` };
    }
    case 'enum': {
      if (own !== undefined) return { message: fill(own, data) };
      const allowed = (params.allowedValues as unknown[]).map(String);
      return { message: `must be one of ${allowed.join(', ')}, not ${showValue(data)}` };
    }
    case 'const':
      return { message: own !== undefined ? fill(own, data) : `must be ${JSON.stringify(params.allowedValue)}, not ${showValue(data)}` };
    case 'format': {
      const check = formats[String(params.format)];
      const message = typeof data === 'string' && check !== undefined ? check(data) : null;
      return { message: message ?? (own !== undefined ? fill(own, data) : `${showValue(data)} is not a valid ${String(params.format)}`) };
    }
    case 'pattern':
      return { message: own !== undefined ? fill(own, data) : `${showValue(data)} does not have the expected form (${String(params.pattern)})` };
    case 'minItems':
      return { message: own !== undefined ? fill(own, data) : params.limit === 1 ? 'is an empty list; give at least one value or leave the field out' : `needs at least ${String(params.limit)} items` };
    case 'maxItems':
      return { message: own !== undefined ? fill(own, data) : `has more than ${String(params.limit)} items` };
    case 'minProperties':
      return { message: own !== undefined ? fill(own, data) : 'is an empty mapping; give at least one entry or leave the field out' };
    case 'minLength':
      return { message: own !== undefined ? fill(own, data) : params.limit === 1 ? `must be a non-empty string, not ${showValue(data)}` : `must be at least ${String(params.limit)} characters long` };
    case 'maxLength':
      return { message: own !== undefined ? fill(own, data) : `must be at most ${String(params.limit)} characters long` };
    case 'minimum':
    case 'exclusiveMinimum':
    case 'maximum':
    case 'exclusiveMaximum':
      return { message: own !== undefined ? fill(own, data) : `must be ${COMPARISONS[String(params.comparison)] ?? String(params.comparison)} ${String(params.limit)}, not ${showValue(data)}` };
    case 'uniqueItems':
      return { message: own !== undefined ? fill(own, data) : `lists the same value twice (items ${String(params.j)} and ${String(params.i)}); remove one` };
    case 'not':
      return { message: own !== undefined ? fill(own, data) : `${showValue(data)} is not allowed here` };
    default:
      return { message: own !== undefined ? fill(own, data) : error.message ?? 'is not valid' };
  }
}

export interface CompileOptions {
  formats?: Readonly<Record<string, FormatCheck>>;
  /** The build's code for this schema; used when its hash is this schema's. */
  generated?: GeneratedValidator;
}

/** Identifies a schema's content (key order included, as the generated code depends on it). */
export function schemaHash(schema: JsonSchema): string {
  return createHash('sha256').update(JSON.stringify(schema)).digest('hex').slice(0, 32);
}

/** The format checks as ajv formats: valid when the check has no message. */
export function ajvFormats(formats: Readonly<Record<string, FormatCheck>>): Record<string, AjvFormat> {
  const out: Record<string, AjvFormat> = {};
  for (const [name, check] of Object.entries(formats)) out[name] = { type: 'string', validate: (s: string) => check(s) === null };
  return out;
}

/**
 * An ajv instance with the options every sidewall schema is compiled with (at run time and by
 * the build's generator, which adds `code`).
 */
export function newAjv(formats: Readonly<Record<string, FormatCheck>>, code?: AjvOptions['code']): Ajv {
  // Loaded here, not at the top: a process whose schemas all have generated code never loads
  // ajv's compiler (about 50 ms of module loading).
  const { Ajv: AjvClass } = createRequire(import.meta.url)('ajv') as typeof import('ajv');
  // strict: unknown keywords in our own schemas are typos (x-messages is the one we add); not
  // strictTypes/strictRequired, which want a type and properties beside every keyword, also
  // inside if/not conditions.
  // inlineRefs off: a referenced part is compiled once as its own function, not copied into
  // every place that refers to it. validateSchema off: checking the schema against the draft-07 meta-schema doubles the compile
  // time at every start; test/unit/schema checks each of our schemas against it once instead.
  const ajv = new AjvClass({ allErrors: true, verbose: true, strict: true, strictTypes: false, strictRequired: false, allowUnionTypes: true, validateSchema: false, inlineRefs: false, ...(code === undefined ? {} : { code }) });
  ajv.addKeyword({ keyword: MESSAGES_KEYWORD, schemaType: 'object' });
  for (const [name, format] of Object.entries(ajvFormats(formats))) ajv.addFormat(name, format);
  return ajv;
}

const CREATE_OPEN = '\nexport function create(formats) {\n';

/**
 * A generated validator module (src/schema/generated/*.js) read from its file when it is needed
 * instead of imported. An imported module stays in the process for good: the rule and config
 * validators are 1.1 MB of source and ≈0.5 MB of compiled code (issue 18: a third of the proxy's
 * own heap), used at start and on a rules reload. Compiled from the file's text this way, they
 * are garbage once the caller drops the validator (hold it through a WeakRef: validatorCache).
 * A file that cannot be read, or is not in the generated shape, has no hash: compileSchema then
 * compiles the schema with ajv, as for a stale module.
 */
export function generatedFromFile(url: URL): GeneratedValidator {
  const read = (): string | undefined => {
    // dist/…/x.js in a build; src/…/x.ts when the sources run as they are (tests): the same text.
    for (const file of url.pathname.endsWith('.js') ? [url, new URL(url.href.replace(/\.js$/, '.ts'))] : [url]) {
      try {
        return readFileSync(file, 'utf8');
      } catch {
        // the next candidate
      }
    }
    return undefined;
  };
  return {
    get hash(): string {
      return /^export const hash = '([0-9a-f]+)';$/m.exec(read() ?? '')?.[1] ?? '';
    },
    create(formats: Readonly<Record<string, AjvFormat>>): SchemaValidateFunction {
      const text = read() ?? '';
      const start = text.indexOf(CREATE_OPEN);
      const end = text.lastIndexOf('}');
      if (start < 0 || end < start) throw new Error(`${fileURLToPath(url)} is not a generated validator module (npm run build writes it)`);
      // The body of create(formats): ajv's standalone code, which requires ajv's runtime helpers.
      const create = compileFunction(`'use strict';\n${text.slice(start + CREATE_OPEN.length, end)}`, ['formats', 'require'], { filename: fileURLToPath(url) }) as (formats: unknown, require: NodeJS.Require) => SchemaValidateFunction;
      return create(formats, createRequire(url));
    },
  };
}

/**
 * A compiled schema kept while something uses it, compiled again after the GC took it: the
 * validators of the config and the rules are needed at start and on a reload, not in between.
 */
export function validatorCache(compile: () => CompiledSchema): () => CompiledSchema {
  let ref: WeakRef<CompiledSchema> | undefined;
  return () => {
    const cached = ref?.deref();
    if (cached !== undefined) return cached;
    const fresh = compile();
    ref = new WeakRef(fresh);
    return fresh;
  };
}

/** Compiles a schema once (or takes its generated code); the returned object is reused for every document. */
export function compileSchema(schema: JsonSchema, options: CompileOptions = {}): CompiledSchema {
  const formats = options.formats ?? {};
  const generated = options.generated !== undefined && options.generated.hash === schemaHash(schema) ? options.generated : undefined;
  const validate: SchemaValidateFunction = generated !== undefined ? generated.create(ajvFormats(formats)) : newAjv(formats).compile(schema);
  return {
    validate,
    origin: generated !== undefined ? 'generated' : 'compiled',
    issues(data: unknown): SchemaIssue[] {
      if (validate(data)) return [];
      const out: SchemaIssue[] = [];
      const seen = new Set<string>();
      const errors = validate.errors ?? [];
      // A value of the wrong type fails its other keywords too; the type error alone says why.
      const wrongType = new Set(errors.filter((e) => e.keyword === 'type').map((e) => e.instancePath));
      for (const error of errors) {
        if (error.keyword !== 'type' && wrongType.has(error.instancePath) && error.keyword !== 'required' && error.keyword !== 'additionalProperties') continue;
        const translated = translate(error, formats);
        if (translated === null) continue;
        const path = pathOf(error.instancePath, data);
        // An error about a property name (propertyNames) names that property.
        const propertyName = (error as ErrorObject & { propertyName?: string }).propertyName;
        if (propertyName !== undefined) path.push(propertyName);
        if (translated.extra !== undefined) path.push(translated.extra);
        const field = fieldOf(path);
        const key = `${field}\u0000${translated.message}`;
        if (seen.has(key)) continue;
        seen.add(key);
        out.push({ path, field, message: translated.message });
      }
      return out;
    },
  };
}
