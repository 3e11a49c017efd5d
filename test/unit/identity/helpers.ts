import { pino } from 'pino';

export const silentLog = pino({ level: 'silent' });

/** Polls `check` until it returns true (or throws with `what` after `timeoutMs`). */
export async function waitUntil(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
