import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts', 'bench/**/*.test.ts'],
    // The real-control-plane suites build and run Kubernetes (and SPIRE): `npm run test:cluster`
    // (test/cluster/vitest.config.ts), never part of `npm test`.
    exclude: [...configDefaults.exclude, 'test/cluster/**'],
    // Real sockets and real TLS handshakes: give slow CI machines room, never assert on speed.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    globalSetup: ['test/global-setup.ts'],
  },
});
