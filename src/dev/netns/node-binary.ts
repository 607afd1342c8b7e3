import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The repository (or installed package) root, resolved from this file (never a hard-coded checkout path). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');

const pinnedNode = `${repoRoot}/node_modules/.bin/node`;

/**
 * The Node 24 that processes in pods run: the one the `node` devDependency installs in a
 * checkout (the system Node may be older and cannot strip types), else — meshlet installed
 * as a package, where that devDependency is absent — the Node running this process, which
 * runs meshlet's TypeScript already.
 */
export const nodeBinary = existsSync(pinnedNode) ? pinnedNode : process.execPath;
