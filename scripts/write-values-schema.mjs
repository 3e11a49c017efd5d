// Writes charts/sidewall/values.schema.json from the schemas in the code (injector/install/values-schema.ts);
// run after `npm run build`. test/injector/values-schema.test.ts fails while the file is stale.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chartValuesSchemaText } from '../dist/injector/install/values-schema.js';

const target = fileURLToPath(new URL('../charts/sidewall/values.schema.json', import.meta.url));
writeFileSync(target, chartValuesSchemaText());
process.stdout.write(`wrote ${target}\n`);
