import { createRequire } from 'node:module';
import type * as NodeHttp from 'node:http';

/**
 * `node:http`, loaded with require() instead of an ES import. Importing a builtin from an ES
 * module builds a namespace of all its exports, which reads every lazy export: node:http's
 * include the WebSocket classes, so an `import … from 'node:http'` makes Node 24 load and run
 * its bundled undici, worker_threads and the web streams (~4.4 MB of RSS and 1.6 MB of heap
 * in every sidecar, measured with --max-semi-space-size=1, for code the sidecar never calls).
 * require() returns the module object and leaves the lazy exports alone. Type-only imports of
 * 'node:http' cost nothing (erased); value imports in the image go through here
 * (test/unit/architecture/import-direction.test.ts).
 */
export const http: typeof NodeHttp = createRequire(import.meta.url)('node:http') as typeof NodeHttp;
