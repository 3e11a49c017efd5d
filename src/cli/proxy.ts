// Placeholder until the proxy command lands; replaced by its implementation.
export async function run(_args: string[]): Promise<number> {
  process.stderr.write('sidewall proxy: not available in this build\n');
  return 2;
}
