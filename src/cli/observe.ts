// `sidewall observe`: tails the flow stream of a running sidecar (its admin port), with filters,
// like `hubble observe`. Prints a compact table by default, or the raw JSON lines with -o json.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { observeFlows, ObserveStreamError } from '../flows/observe-client.js';
import { compileFlowFilter, InvalidFlowFilterError, type FlowFilter } from '../flows/flow-filter.js';
import { flowTableHeader, flowTableRow, terminalTableOptions } from '../flows/flow-table.js';
import type { FlowRecord } from '../flows/types.js';

const HELP = `usage: sidewall observe [flags]

Tails the flow records of a running sidecar through its admin port.

flags:
  --admin HOST:PORT   admin address of the sidecar (default 127.0.0.1:15000)
  --token-file FILE   send the bearer token in FILE (the sidecar's admin.tokenFile); without
                      it only the sidecar's own user may read the stream (kubectl exec into
                      sidewall-proxy and run sidewall observe there)
  --verdict V         allowed | denied | would-deny
  --protocol P        tcp, http, http2, grpc, tls, dns, ...
  --direction D       ingress | egress | intra
  --peer X            IP, CIDR, or namespace/pod (namespace/ for any pod); source or destination
  --service NS/NAME   the destination's Kubernetes Service (NS/ for any Service of NS)
  --rule ID           rule id ('default' for the default action)
  --tunnel KIND       tunnel kind ('any' for every detection)
  --type T            connection | request | alert
  --last N            start with the last N matching records (default 20, or 0 with --follow)
  -f, --follow        keep streaming new records until interrupted
  -o, --output F      table (default) | json (one raw record per line)

Filter flags repeat or take comma-separated values: values of one flag are alternatives,
different flags must all match.
`;

const LIST_FLAGS = ['verdict', 'protocol', 'direction', 'peer', 'service', 'rule', 'tunnel', 'type'] as const;

class ObserveUsageError extends Error {
  readonly code = 'SW_OBSERVE_USAGE';
}

interface ObserveSettings {
  admin: string;
  token?: string;
  last: number;
  follow: boolean;
  output: 'table' | 'json';
  filter: FlowFilter;
}

function parseSettings(args: string[]): ObserveSettings | 'help' {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      admin: { type: 'string' },
      'token-file': { type: 'string' },
      verdict: { type: 'string', multiple: true },
      protocol: { type: 'string', multiple: true },
      direction: { type: 'string', multiple: true },
      peer: { type: 'string', multiple: true },
      service: { type: 'string', multiple: true },
      rule: { type: 'string', multiple: true },
      tunnel: { type: 'string', multiple: true },
      type: { type: 'string', multiple: true },
      last: { type: 'string' },
      follow: { type: 'boolean', short: 'f' },
      output: { type: 'string', short: 'o' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return 'help';
  const filter: FlowFilter = {};
  for (const name of LIST_FLAGS) {
    const raw = values[name];
    if (raw === undefined) continue;
    filter[name] = raw.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
  }
  compileFlowFilter(filter); // refuse bad values here, with the flag's name, before connecting
  const follow = values.follow === true;
  let last = follow ? 0 : 20;
  if (values.last !== undefined) {
    if (!/^\d+$/.test(values.last)) throw new ObserveUsageError(`--last: '${values.last}' is not a non-negative integer`);
    last = Number(values.last);
  }
  const output = values.output ?? 'table';
  if (output !== 'table' && output !== 'json') throw new ObserveUsageError(`-o: '${output}' is not one of table, json`);
  const admin = values.admin ?? '127.0.0.1:15000';
  if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(admin)) throw new ObserveUsageError(`--admin: '${admin}' is not HOST:PORT`);
  let token: string | undefined;
  const tokenFile = values['token-file'];
  if (tokenFile !== undefined) {
    try {
      token = readFileSync(tokenFile, 'utf8').trim();
    } catch (err) {
      throw new ObserveUsageError(`--token-file: cannot read '${tokenFile}': ${(err as Error).message}`);
    }
    if (token === '') throw new ObserveUsageError(`--token-file: '${tokenFile}' is empty`);
  }
  return { admin, last, follow, output, filter, ...(token !== undefined ? { token } : {}) };
}

export async function run(args: string[]): Promise<number> {
  let settings: ObserveSettings | 'help';
  try {
    settings = parseSettings(args);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const known = err instanceof ObserveUsageError || err instanceof InvalidFlowFilterError || (err instanceof TypeError && 'code' in err);
    process.stderr.write(`sidewall observe: ${message}\n${known ? "Run 'sidewall observe --help' for the flags.\n" : ''}`);
    return 2;
  }
  if (settings === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  const { output } = settings;
  let headerDue = output === 'table';
  // On a terminal: fit its width and colour the verdicts (unless NO_COLOR, https://no-color.org).
  const table = terminalTableOptions(process.stdout);
  const print = (record: FlowRecord, lost: number): void => {
    if (headerDue) {
      // With the first record, so an error or an empty result prints no stray header.
      process.stdout.write(flowTableHeader(table) + '\n');
      headerDue = false;
    }
    if (lost > 0) process.stderr.write(`... ${lost} matching records lost: this observer fell behind\n`);
    process.stdout.write((output === 'json' ? JSON.stringify(record) : flowTableRow(record, table)) + '\n');
  };
  const session = observeFlows(settings, print);
  const stop = (): void => session.cancel();
  // `sidewall observe -f | head`: the reader went away; that ends the command, quietly.
  const onStdoutError = (err: NodeJS.ErrnoException): void => {
    if (err.code === 'EPIPE') stop();
    else throw err;
  };
  process.stdout.on('error', onStdoutError);
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await session.done;
    return 0;
  } catch (err) {
    process.stderr.write(`sidewall observe: ${err instanceof ObserveStreamError || err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    process.stdout.off('error', onStdoutError);
  }
}
