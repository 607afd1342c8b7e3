// The retry schedule shared by the meshlet-ca and workload-api sources.
import { describe, expect, it } from 'vitest';
import { Backoff } from '../../../src/data-plane/identity/sources/backoff.ts';

describe('Backoff', () => {
  it('linear steps up to the maximum (go-spiffe: +1 s up to 30 s), back to the start on reset', () => {
    const b = new Backoff({ initialMs: 1000, stepMs: 1000, maxMs: 3000 });
    expect([b.next(), b.next(), b.next(), b.next()]).toEqual([1000, 2000, 3000, 3000]);
    expect(b.attempts).toBe(4);
    b.reset();
    expect(b.next()).toBe(1000);
  });

  it('exponential growth capped at the maximum', () => {
    const b = new Backoff({ initialMs: 100, factor: 3, maxMs: 1000 });
    expect([b.next(), b.next(), b.next(), b.next()]).toEqual([100, 300, 900, 1000]);
  });

  it('jitter only shortens a delay, by at most the given fraction', () => {
    const low = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.2, random: () => 0.999999 });
    expect(low.next()).toBe(800);
    const high = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.2, random: () => 0 });
    expect(high.next()).toBe(1000);
    const real = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.5 });
    for (let i = 0; i < 200; i++) {
      const d = real.next();
      expect(d).toBeGreaterThanOrEqual(500);
      expect(d).toBeLessThanOrEqual(1000);
    }
  });

  it('refuses nonsense options with a coded error', () => {
    expect(() => new Backoff({ initialMs: -1, maxMs: 10 })).toThrow(expect.objectContaining({ code: 'BACKOFF_BAD_OPTIONS' }));
    expect(() => new Backoff({ initialMs: 10, maxMs: 5 })).toThrow(/maxMs/);
    expect(() => new Backoff({ initialMs: 1, maxMs: 5, stepMs: 1, factor: 2 })).toThrow(/not both/);
    expect(() => new Backoff({ initialMs: 1, maxMs: 5, jitter: 1.5 })).toThrow(/jitter/);
    expect(() => new Backoff({ initialMs: 1, maxMs: 5, factor: 0.5 })).toThrow(/factor/);
  });
});
