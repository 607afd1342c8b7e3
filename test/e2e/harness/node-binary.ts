import { fileURLToPath } from 'node:url';

/** The repository root, resolved from this file (never a hard-coded checkout path). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');

/**
 * The Node 24 that the `node` devDependency installs: processes in pods run TypeScript
 * directly, which the system Node (older) cannot.
 */
export const nodeBinary = `${repoRoot}/node_modules/.bin/node`;
