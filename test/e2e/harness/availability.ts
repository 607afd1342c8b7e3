import { e2eAvailability } from '../../../src/dev/netns/availability.ts';

/** For `describe.skipIf(e2eSkipped('...'))`: prints why a suite is skipped, never skips silently. */
export function e2eSkipped(suite: string): boolean {
  const a = e2eAvailability();
  if (!a.ok) console.warn(`[e2e] SKIPPED ${suite}: ${a.reason}`);
  return !a.ok;
}
