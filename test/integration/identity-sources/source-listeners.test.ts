import { describe, expect, it } from 'vitest';
import { SourceListeners } from '../../../src/data-plane/identity/sources/source-listeners.ts';
import type { IdentitySnapshot } from '../../../src/data-plane/identity/svid.ts';

// Listeners run inside stream and file-watch callbacks of a long-running process: one that
// throws must not stop the others or escape.
describe('identity source listeners', () => {
  const snapshot = { svid: {}, bundles: new Map() } as unknown as IdentitySnapshot;

  it('reports a throwing update listener as an error event and still calls the others', () => {
    const listeners = new SourceListeners();
    const seen: string[] = [];
    const errors: Error[] = [];
    listeners.onUpdate(() => {
      throw new Error('listener bug');
    });
    listeners.onUpdate(() => seen.push('second'));
    listeners.onError((e) => errors.push(e));
    listeners.onError(() => {
      throw new Error('error listener bug');
    });

    expect(() => listeners.emitUpdate(snapshot)).not.toThrow();
    expect(seen).toEqual(['second']);
    expect(errors.map((e) => e.message)).toEqual(['listener bug']);
  });

  it('stops calling a listener once unsubscribed, and after clear()', () => {
    const listeners = new SourceListeners();
    let calls = 0;
    const off = listeners.onUpdate(() => calls++);
    listeners.emitUpdate(snapshot);
    off();
    listeners.emitUpdate(snapshot);
    listeners.onUpdate(() => calls++);
    listeners.clear();
    listeners.emitUpdate(snapshot);
    expect(calls).toBe(1);
  });
});
