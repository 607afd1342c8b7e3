// Builds the production artifact: what the image runs and the bench measures
// (docs/performance.md, "The artifact"). Development keeps running the TypeScript sources.
//
//   node scripts/build-dist.mjs [--out DIR]      (npm run build: DIR = dist)
//
// The output mirrors the repository's layout — bin/meshlet.js, src/**/*.js, package.json,
// the .proto files, build/Release/original_dst.node when it was built — so every path a
// module computes from its own URL (the addon, the protos, package.json, the policy parse
// worker) resolves the same way in the artifact as in the sources, and node_modules is found
// by walking up from the output as usual. Plain JavaScript so it runs before anything is built.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function fail(message) {
  process.stderr.write(`build: BUILD_FAILED: ${message}\n`);
  process.exit(1);
}

const args = process.argv.slice(2);
let out = join(REPO, 'dist');
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--out' && args[i + 1]) out = resolve(args[++i]);
  else if (args[i] === '--help' || args[i] === '-h') {
    process.stdout.write('Usage: node scripts/build-dist.mjs [--out DIR]\nCompiles src/ to JavaScript in DIR (default dist/), laid out as the repository is; run DIR/bin/meshlet.js.\n');
    process.exit(0);
  } else fail(`unknown argument ${JSON.stringify(args[i])} (usage: node scripts/build-dist.mjs [--out DIR])`);
}
if (out === REPO) fail('--out must not be the repository itself');

rmSync(out, { recursive: true, force: true });

// 1. TypeScript → JavaScript, one file per module (no bundle: the CLI loads each command's
// modules only when that command runs, and a bundle would load them all). Relative `.ts`
// imports are rewritten to `.js` by the compiler.
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
try {
  execFileSync(process.execPath, [tsc, '-p', join(REPO, 'tsconfig.build.json'), '--outDir', out], { stdio: 'inherit', cwd: REPO });
} catch {
  fail('tsc reported errors (above)');
}

// 2. Development tooling is not part of the artifact (docs/architecture.md, "The tree"):
// the demo command reaches it through a dynamic import, so the compiler emitted it.
rmSync(join(out, 'src', 'dev'), { recursive: true, force: true });
rmSync(join(out, 'src', 'cli.js'), { force: true });

// 3. The entry point: bin/meshlet.js with its one import pointed at the compiled CLI.
const entry = readFileSync(join(REPO, 'bin', 'meshlet.js'), 'utf8');
const compiledEntry = entry.replace("import('../src/cli/main.ts')", "import('../src/cli/main.js')");
if (compiledEntry === entry) fail("bin/meshlet.js no longer imports '../src/cli/main.ts': update scripts/build-dist.mjs");
mkdirSync(join(out, 'bin'), { recursive: true });
writeFileSync(join(out, 'bin', 'meshlet.js'), compiledEntry, { mode: 0o755 });

// 4. What modules read at run time besides code, and the code tsc does not emit: JavaScript
// generated into the tree (src/**/generated/*.js, e.g. the policy validator), copied as it is.
cpSync(join(REPO, 'package.json'), join(out, 'package.json'));
// `meshlet install` prints the control plane as deploy/ renders it (generated, committed).
mkdirSync(join(out, 'src/control-plane/install'), { recursive: true });
cpSync(join(REPO, 'src/control-plane/install/control-plane.yaml'), join(out, 'src/control-plane/install/control-plane.yaml'));
function copyProtos(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) copyProtos(p);
    else if (e.name.endsWith('.proto') || (e.name.endsWith('.js') && basename(dir) === 'generated')) cpSync(p, join(out, relative(REPO, p)));
  }
}
copyProtos(join(REPO, 'src'));
const addon = join(REPO, 'build', 'Release', 'original_dst.node');
if (existsSync(addon)) {
  mkdirSync(join(out, 'build', 'Release'), { recursive: true });
  cpSync(addon, join(out, 'build', 'Release', 'original_dst.node'));
}
process.stdout.write(`build: ${relative(process.cwd(), out) || '.'}/bin/meshlet.js ready${existsSync(addon) ? '' : ' (no original-destination addon: run npm ci with a C toolchain to include it)'}\n`);
