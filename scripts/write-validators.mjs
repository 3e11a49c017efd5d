// `npm run build`, after tsc: writes each schema's standalone validator (src/schema/standalone.ts)
// into src/schema/generated/ and, when one changed, into dist/ too (the module is plain JavaScript,
// so the compiled file is the same text), so that the build in hand already uses it.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GENERATED_DOCUMENTS, GENERATED_VALIDATORS, generatedModule } from '../dist/src/schema/standalone.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const quiet = process.argv.includes('--quiet');
for (const target of GENERATED_VALIDATORS) {
  const text = generatedModule(target);
  const source = join(root, target.file);
  let old = '';
  try {
    old = readFileSync(source, 'utf8');
  } catch {}
  if (old === text) continue;
  mkdirSync(dirname(source), { recursive: true });
  writeFileSync(source, text);
  const compiled = join(root, 'dist', target.file.replace(/\.ts$/, '.js'));
  mkdirSync(dirname(compiled), { recursive: true });
  writeFileSync(compiled, text);
  if (!quiet) process.stdout.write(`wrote ${target.file}\n`);
}
// The published JSON Schemas (schema/*.schema.json, GENERATED_DOCUMENTS), from the code that
// assembles them (the flow record's l7 fields come from the protocol registry).
for (const doc of GENERATED_DOCUMENTS) {
  const text = doc.text();
  const file = join(root, doc.file);
  let old = '';
  try {
    old = readFileSync(file, 'utf8');
  } catch {}
  if (old === text) continue;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
  if (!quiet) process.stdout.write(`wrote ${doc.file}\n`);
}
