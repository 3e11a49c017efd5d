// The `sidewall` command: one subcommand per module, loaded lazily so that `sidewall init`
// (run in an init container) does not pay for the proxy's dependencies and vice versa.
export type Command = (args: string[]) => Promise<number>;

interface CommandEntry {
  summary: string;
  load: () => Promise<{ run: Command }>;
}

const commands: Record<string, CommandEntry> = {
  init: { summary: "write the pod's iptables redirection (iptables-restore)", load: () => import('./init.js') },
  proxy: { summary: 'run the sidecar proxy', load: () => import('./proxy.js') },
  policy: { summary: 'check a rules file, or test a flow against it', load: () => import('./policy.js') },
  observe: { summary: "tail a running sidecar's flow records", load: () => import('./observe.js') },
  capture: { summary: "start, list and fetch a running sidecar's packet captures (pcapng)", load: () => import('./capture.js') },
  webhook: { summary: 'run the admission webhook server', load: () => import('./webhook.js') },
  controller: { summary: 'run the workload identity controller (pod IP → workload, streamed to sidecars)', load: () => import('./controller.js') },
  manifests: { summary: 'print the whole installation as plain YAML', load: () => import('./manifests.js') },
  check: { summary: 'check values, rules, config and this kernel before an install; the cluster (--kubeconfig) after', load: () => import('./check.js') },
};

export function usage(): string {
  const lines = ['usage: sidewall <command> [flags]', '', 'commands:'];
  for (const [name, entry] of Object.entries(commands)) lines.push(`  ${name.padEnd(10)} ${entry.summary}`);
  lines.push('', "Run 'sidewall <command> --help' for a command's flags; 'sidewall --version' for the version and image.");
  return lines.join('\n') + '\n';
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v' || name === 'version') {
    const { versionText } = await import('./version.js');
    process.stdout.write(versionText());
    return 0;
  }
  const entry = commands[name];
  if (entry === undefined) {
    process.stderr.write(`sidewall: unknown command '${name}'\n${usage()}`);
    return 2;
  }
  // Before the proxy's modules load (their start-up garbage is what first grows the young generation).
  if (name === 'proxy') (await import('./young-generation.js')).capYoungGeneration();
  const mod = await entry.load();
  return mod.run(rest);
}
