// `sidewall capture`: lists, starts and fetches the packet captures of a running sidecar through
// its admin port (GET/POST /captures, GET/DELETE /captures/ID). Captures are pcapng files the
// sidecar writes itself from the bytes it relays (src/capture); tcpdump -r, tshark -r and
// Wireshark read them.
import { createWriteStream, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { parseArgs } from 'node:util';
import type { CaptureInfo } from '../capture/store.js';
import { UsageError } from './flags.js';

const HELP = `usage: sidewall capture [flags]

Starts, lists and fetches packet captures (pcapng) of a running sidecar through its admin port.
The capture holds synthesized Ethernet/IP/TCP frames with each connection's original addresses
and ports as the app saw them, so tshark/Wireshark "Follow TCP stream" shows the exchange.

  sidewall capture --flow ID | --rule ID | --peer IP[/N]  [--duration 30s] -w FILE
      capture one open connection (GET /connections lists them; until it closes or the
      duration ends), or the connections a rule decides, or those of a peer, for the duration;
      then write the pcapng to FILE ('-': stdout, e.g. | tshark -r -)
  sidewall capture --list [-o json]          the captures the sidecar holds (alert, rule, on-demand)
  sidewall capture --fetch ID -w FILE        fetch a stored capture (an alert record names its own)
  sidewall capture --stop ID                 end a running capture now

flags:
  --admin HOST:PORT   admin address of the sidecar (default 127.0.0.1:15000)
  --token-file FILE   send the bearer token in FILE (the sidecar's admin.tokenFile); without it
                      only the sidecar's own user may (kubectl exec into sidewall-proxy)
  --duration D        30s (default), 500ms, 2m, or seconds; at most 1h
  -w FILE             where the pcapng goes
`;

interface Settings {
  admin: { host: string; port: number };
  token?: string;
}

interface Reply {
  status: number;
  body: Buffer;
}

function call(settings: Settings, method: string, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: settings.admin.host,
        port: settings.admin.port,
        method,
        path,
        headers: settings.token !== undefined ? { authorization: `Bearer ${settings.token}` } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function fetchTo(settings: Settings, id: string, out: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: settings.admin.host, port: settings.admin.port, method: 'GET', path: `/captures/${encodeURIComponent(id)}`, headers: settings.token !== undefined ? { authorization: `Bearer ${settings.token}` } : {} },
      (res) => {
        if (res.statusCode !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => reject(new Error(`${res.statusCode}: ${errorText(Buffer.concat(chunks))}`)));
          return;
        }
        const sink = out === '-' ? process.stdout : createWriteStream(out);
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.pipe(sink);
        const done = (): void => resolve(bytes);
        if (out === '-') res.on('end', done);
        else sink.on('finish', done);
        sink.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function errorText(body: Buffer): string {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { error?: string };
    return parsed.error ?? body.toString('utf8').trim();
  } catch {
    return body.toString('utf8').trim();
  }
}

/** '30s', '500ms', '2m', '1h' or plain seconds, in milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (m === null) throw new UsageError(`--duration: '${text}' is not a duration (e.g. 30s, 500ms, 2m)`);
  const ms = Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  if (!(ms >= 1 && ms <= 3_600_000)) throw new UsageError(`--duration: ${text} is outside 1ms..1h`);
  return Math.round(ms);
}

function parseAdmin(text: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(text);
  if (m === null) throw new UsageError(`--admin: '${text}' is not HOST:PORT`);
  return { host: m[1]!, port: Number(m[2]) };
}

function table(list: CaptureInfo[]): string {
  const rows = [['ID', 'TRIGGER', 'WHAT', 'FLOWS', 'PACKETS', 'BYTES', 'STARTED', 'STATE']];
  for (const c of list) {
    const what = c.flow !== undefined ? `flow ${c.flow}` : c.ruleId !== undefined ? `rule ${c.ruleId}` : c.peer !== undefined ? `peer ${c.peer}` : '';
    rows.push([c.id, c.trigger, what, String(c.flowCount), String(c.packets), String(c.bytes), c.startedAt, c.active ? 'active' : c.truncated ? 'truncated' : 'done']);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

export async function run(args: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      options: {
        admin: { type: 'string' },
        'token-file': { type: 'string' },
        flow: { type: 'string' },
        rule: { type: 'string' },
        peer: { type: 'string' },
        duration: { type: 'string' },
        list: { type: 'boolean' },
        fetch: { type: 'string' },
        stop: { type: 'string' },
        output: { type: 'string', short: 'o' },
        write: { type: 'string', short: 'w' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    process.stderr.write(`sidewall capture: ${(err as Error).message}\n${HELP}`);
    return 2;
  }
  if (values.help === true) {
    process.stdout.write(HELP);
    return 0;
  }
  try {
    const settings: Settings = { admin: parseAdmin((values.admin as string | undefined) ?? '127.0.0.1:15000') };
    if (typeof values['token-file'] === 'string') settings.token = readFileSync(values['token-file'], 'utf8').trim();
    const out = values.write as string | undefined;
    if (values.list === true) {
      const reply = await call(settings, 'GET', '/captures');
      if (reply.status !== 200) throw new Error(`${reply.status}: ${errorText(reply.body)}`);
      const list = JSON.parse(reply.body.toString('utf8')) as CaptureInfo[];
      process.stdout.write(values.output === 'json' ? list.map((c) => JSON.stringify(c)).join('\n') + (list.length ? '\n' : '') : table(list));
      return 0;
    }
    if (typeof values.stop === 'string') {
      const reply = await call(settings, 'DELETE', `/captures/${encodeURIComponent(values.stop)}`);
      if (reply.status !== 200) throw new Error(`${reply.status}: ${errorText(reply.body)}`);
      process.stdout.write(reply.body.toString('utf8'));
      return 0;
    }
    if (typeof values.fetch === 'string') {
      if (out === undefined) throw new UsageError('--fetch needs -w FILE (or -w - for stdout)');
      const bytes = await fetchTo(settings, values.fetch, out);
      if (out !== '-') process.stderr.write(`${values.fetch}: ${bytes} bytes written to ${out}\n`);
      return 0;
    }
    const selectors = (['flow', 'rule', 'peer'] as const).filter((k) => typeof values[k] === 'string');
    if (selectors.length !== 1) throw new UsageError('name one of --flow, --rule or --peer (or --list, --fetch, --stop); see --help');
    if (out === undefined) throw new UsageError('-w FILE is required (-w - for stdout)');
    const durationMs = parseDuration((values.duration as string | undefined) ?? '30s');
    const key = selectors[0]!;
    const query = new URLSearchParams({ [key]: values[key] as string, durationMs: String(durationMs) });
    const started = await call(settings, 'POST', `/captures?${query.toString()}`);
    if (started.status !== 201) throw new Error(`${started.status}: ${errorText(started.body)}`);
    const info = JSON.parse(started.body.toString('utf8')) as CaptureInfo;
    process.stderr.write(`capture ${info.id} started (${key} ${values[key] as string}, ${durationMs} ms)\n`);
    // Until the sidecar ends it (the duration, or the flow closed); Ctrl-C ends it early.
    let interrupted = false;
    const onSignal = (): void => {
      interrupted = true;
    };
    process.once('SIGINT', onSignal);
    const until = Date.now() + durationMs + 5000;
    for (;;) {
      if (interrupted) {
        await call(settings, 'DELETE', `/captures/${info.id}`);
        break;
      }
      const reply = await call(settings, 'GET', '/captures');
      const now = (JSON.parse(reply.body.toString('utf8')) as CaptureInfo[]).find((c) => c.id === info.id);
      if (now === undefined || !now.active || Date.now() > until) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    process.off('SIGINT', onSignal);
    const bytes = await fetchTo(settings, info.id, out);
    if (out !== '-') process.stderr.write(`${info.id}: ${bytes} bytes written to ${out}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`sidewall capture: ${(err as Error).message}\n`);
    return err instanceof UsageError ? 2 : 1;
  }
}
