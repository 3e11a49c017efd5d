// Placeholder until the policy command lands; replaced by its implementation.
export async function run(_args: string[]): Promise<number> {
  process.stderr.write('sidewall policy: not available in this build\n');
  return 2;
}
