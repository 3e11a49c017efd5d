// Validates flow records against schema/flow-record.schema.json. Shared with the end-to-end tests:
// every record the sidecar emits there should pass assertValidFlowRecords().
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { ErrorObject, ValidateFunction } from 'ajv';

const schemaPath = fileURLToPath(new URL('../../../schema/flow-record.schema.json', import.meta.url));
let validator: ValidateFunction | null = null;

let lastAjv: Ajv2020 | null = null;

function newValidator(schema: object): ValidateFunction {
  const ajv = new Ajv2020({ allErrors: true, strict: true });
  // ajv-formats is CommonJS; its default export arrives wrapped under ESM.
  type AddFormats = (instance: Ajv2020) => unknown;
  const wrapped = addFormatsModule as unknown as { default?: AddFormats };
  const addFormats = wrapped.default ?? (addFormatsModule as unknown as AddFormats);
  addFormats(ajv);
  lastAjv = ajv;
  return ajv.compile(schema);
}

let compiledAjv: Ajv2020 | null = null;

function compile(): ValidateFunction {
  if (validator === null) {
    validator = newValidator(JSON.parse(readFileSync(schemaPath, 'utf8')) as object);
    compiledAjv = lastAjv;
  }
  return validator;
}

function errorsOf(validate: ValidateFunction, record: unknown): string[] {
  if (validate(record)) return [];
  return (validate.errors ?? []).map((e: ErrorObject) => `${e.instancePath || '/'} ${e.message ?? ''}${e.params !== undefined && 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : ''}`.trim());
}

/**
 * The violations of one record's `l7` fields against its protocol's ($defs/l7-PROTOCOL); empty
 * for a protocol the schema does not list (one registered only by a test).
 */
export function l7Errors(protocol: string, l7: unknown): string[] {
  const validate = compile();
  const id = (validate.schema as { $id: string }).$id;
  const fields = compiledAjv?.getSchema(`${id}#/$defs/l7-${protocol}`);
  return fields === undefined ? [] : errorsOf(fields, l7).map((e) => `l7${e === '/' ? '' : e}`);
}

/** Returns the schema violations of one record ('' path = the record itself); empty when valid. */
export function flowRecordErrors(record: unknown): string[] {
  return errorsOf(compile(), record);
}

/**
 * The same against a schema the caller assembled (flowRecordSchema() with a protocol registered
 * at run time, e.g. the toy protocol's test).
 */
export function flowRecordErrorsAgainst(schema: object, record: unknown): string[] {
  return errorsOf(newValidator(schema), record);
}

/** Throws with the first invalid record and its errors. */
export function assertValidFlowRecords(records: readonly unknown[]): void {
  for (const [index, record] of records.entries()) {
    const errors = flowRecordErrors(record);
    if (errors.length > 0) {
      throw new Error(`flow record #${index} does not match the schema: ${errors.join('; ')}\n${JSON.stringify(record)}`);
    }
  }
}

/** Parses JSON lines (stdout of a sidecar) into records, skipping blank lines. */
export function parseFlowLines(text: string): unknown[] {
  return text.split('\n').filter((line) => line.trim() !== '').map((line) => JSON.parse(line) as unknown);
}
