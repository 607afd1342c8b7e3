/**
 * Waiting helpers for the identity-source tests: they wait for events and conditions with a
 * generous deadline, never for a fixed time, so a loaded machine only makes them slower.
 */
const DEADLINE_MS = 15_000;

/** Resolves with the first value the source hands to `subscribe`'s listener that satisfies `accept`. */
export function nextEvent<T>(subscribe: (listener: (value: T) => void) => () => void, accept: (value: T) => boolean = () => true, what = 'event'): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`no ${what} within ${DEADLINE_MS} ms`));
    }, DEADLINE_MS);
    const unsubscribe = subscribe((value) => {
      if (!accept(value)) return;
      clearTimeout(timer);
      unsubscribe();
      resolve(value);
    });
  });
}

/** Polls `condition` until it holds. */
export async function waitFor(condition: () => boolean, what: string): Promise<void> {
  const end = Date.now() + DEADLINE_MS;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The `code` of an error and of each error in its cause chain, outermost first. */
export function causeCodes(err: unknown): unknown[] {
  const codes: unknown[] = [];
  for (let e = err as { code?: unknown; cause?: unknown } | undefined; e && typeof e === 'object'; e = e.cause as typeof e) codes.push(e.code);
  return codes;
}
