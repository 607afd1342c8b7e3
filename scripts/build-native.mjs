// Builds the original-destination addon (binding.gyp -> build/Release/original_dst.node,
// docs/original-destination.md). `npm ci` runs it as this package's "install" script, after
// the dependencies are in place. Plain JavaScript so that it runs on any Node >= 20, whichever
// one npm starts it with.
//
// node-gyp is told where the Node headers are (--nodedir), so it never downloads them: first
// the `node` devDependency's platform package (node_modules/node/node_modules/node-<os>-<arch>/
// include/node); without devDependencies, npm's `nodedir` setting (the Dockerfile's build
// stage sets the image's /usr/local), else an installed Node's own headers. Any of them will
// do: the addon uses N-API only (NAPI_VERSION 8), whose ABI is the same in every Node that has
// it (12.22, 14.17, 15.12 and later), so the headers need not match the Node that loads it.
//
// Without a C compiler, make or python3 (node-gyp needs all three) the addon is not built:
// ONE line says so and what that disables, and the script exits 0, so `npm ci` still succeeds
// and explicit mode works. MESHLET_NATIVE_REQUIRED=1 (the image's build stage) makes that
// an error instead.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const addon = join(root, 'build', 'Release', 'original_dst.node');
const logFile = join(root, 'build', 'original-dst-build.log');
const required = process.env.MESHLET_NATIVE_REQUIRED === '1';
const DISABLES = 'transparent interception cannot learn original destinations (SO_ORIGINAL_DST); explicit mode works without it';

function notBuilt(reason) {
  const line = `meshlet: native addon original_dst NOT built: ${reason}. Without it ${DISABLES}. See docs/original-destination.md.`;
  console.error(line);
  process.exit(required ? 1 : 0);
}

/** Runs a command quietly; true when it started and exited 0. */
function works(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return !r.error && r.status === 0;
}

/** A directory node-gyp accepts as --nodedir: it holds include/node/{node_api.h,common.gypi}. */
function isNodeDir(dir) {
  return existsSync(join(dir, 'include', 'node', 'node_api.h')) && existsSync(join(dir, 'include', 'node', 'common.gypi'));
}

function findNodeDir() {
  const candidates = [];
  // The `node` devDependency installs its binary and headers as node-<os>-<arch> beside itself:
  // the headers of the Node 24 that runs meshlet. First, even over npm's `nodedir` setting (a
  // machine's ~/.npmrc may point it at an older system Node).
  const nodePkgModules = join(root, 'node_modules', 'node', 'node_modules');
  if (existsSync(nodePkgModules)) {
    for (const name of readdirSync(nodePkgModules).sort()) {
      if (name.startsWith(`node-${process.platform}-`)) candidates.push(join(nodePkgModules, name));
    }
  }
  // Without devDependencies (the image's `npm ci --omit=dev`): npm's nodedir (the Dockerfile
  // sets /usr/local), else an installed Node's own headers: <prefix>/include/node.
  if (process.env.npm_config_nodedir) candidates.push(process.env.npm_config_nodedir);
  candidates.push(dirname(dirname(process.execPath)), '/usr/local', '/usr');
  return candidates.find(isNodeDir);
}

/** npm hands its bundled node-gyp to lifecycle scripts as npm_config_node_gyp. */
function findNodeGyp() {
  const candidates = [process.env.npm_config_node_gyp];
  if (process.env.npm_execpath) candidates.push(join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((p) => p && existsSync(p));
}

if (process.platform !== 'linux') notBuilt(`SO_ORIGINAL_DST exists only on Linux (this is ${process.platform})`);

const cc = process.env.CC || 'cc';
if (!works(cc, ['--version'])) notBuilt(`no C compiler (\`${cc}\` not found; apt-get install g++ make python3)`);
if (!works('make', ['--version'])) notBuilt('`make` not found (apt-get install make)');
const python = process.env.npm_config_python || process.env.PYTHON || 'python3';
if (!works(python, ['--version'])) notBuilt(`\`${python}\` not found (node-gyp needs python3: apt-get install python3)`);
const nodeGyp = findNodeGyp();
if (!nodeGyp) notBuilt('node-gyp not found (run it through npm: `npm ci` or `npm run install`, which provide npm\'s bundled node-gyp)');
const nodeDir = findNodeDir();
if (!nodeDir) notBuilt('no Node headers on disk (node_modules/node/node_modules/node-<os>-<arch>/include/node, /usr/local/include/node); set npm_config_nodedir');

const args = [nodeGyp, 'rebuild', `--nodedir=${nodeDir}`, `--python=${python}`];
const run = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8' });
const output = `$ ${process.execPath} ${args.join(' ')}\n${run.stdout ?? ''}${run.stderr ?? ''}${run.error ? String(run.error) : ''}`;
mkdirSync(dirname(logFile), { recursive: true });
writeFileSync(logFile, output);
if (run.status !== 0 || !existsSync(addon)) {
  const firstError = output.split('\n').find((l) => /\berror\b/i.test(l) && !l.startsWith('$')) ?? `node-gyp exited ${run.status}`;
  notBuilt(`node-gyp rebuild failed (${firstError.trim().slice(0, 200)}; full log: ${relative(root, logFile)})`);
}
try {
  const loaded = createRequire(import.meta.url)(addon);
  if (typeof loaded.get !== 'function') throw new Error('it exports no get()');
} catch (err) {
  notBuilt(`${relative(root, addon)} was built but does not load (${err.message})`);
}
console.error(`meshlet: built ${relative(root, addon)} (original destination addon; headers from ${nodeDir})`);
