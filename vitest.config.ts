import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts', 'injector/**/*.test.ts', 'bench/**/*.test.ts'],
    // Real sockets and real TLS handshakes: give slow CI machines room, never assert on speed.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    globalSetup: ['test/global-setup.ts'],
  },
});
