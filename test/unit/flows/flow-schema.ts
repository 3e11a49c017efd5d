// Validates flow records against schema/flow-record.schema.json. Shared with the end-to-end tests:
// every record the sidecar emits there should pass assertValidFlowRecords().
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { ErrorObject, ValidateFunction } from 'ajv';

const schemaPath = fileURLToPath(new URL('../../../schema/flow-record.schema.json', import.meta.url));
let validator: ValidateFunction | null = null;

function compile(): ValidateFunction {
  if (validator !== null) return validator;
  const ajv = new Ajv2020({ allErrors: true, strict: true });
  // ajv-formats is CommonJS; its default export arrives wrapped under ESM.
  type AddFormats = (instance: Ajv2020) => unknown;
  const wrapped = addFormatsModule as unknown as { default?: AddFormats };
  const addFormats = wrapped.default ?? (addFormatsModule as unknown as AddFormats);
  addFormats(ajv);
  validator = ajv.compile(JSON.parse(readFileSync(schemaPath, 'utf8')) as object);
  return validator;
}

/** Returns the schema violations of one record ('' path = the record itself); empty when valid. */
export function flowRecordErrors(record: unknown): string[] {
  const validate = compile();
  if (validate(record)) return [];
  return (validate.errors ?? []).map((e: ErrorObject) => `${e.instancePath || '/'} ${e.message ?? ''}`.trim());
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
