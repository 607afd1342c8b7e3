/**
 * Generates src/control-plane/install/control-plane.yaml: the control plane exactly as
 * `kubectl kustomize deploy/` renders it (real kustomize, the one embedded in kubectl), with a
 * header. `meshlet install` prints these objects plus what docs/deploy.md steps 1-3 make by hand
 * (docs/install.md); the image carries the file next to the compiled CLI.
 *
 *   node scripts/generate-install-manifests.ts            (npm run generate:install-manifests)
 *   node scripts/generate-install-manifests.ts --check    exit 1 if the committed file is stale
 *
 * The kubectl used: $KUBECTL, else the one the cluster suites build (test/cluster/build/
 * kubernetes.sh --check names it), else `kubectl` on PATH. Run it after every change under
 * deploy/ (except examples/ and monitoring/); test/cluster/install-check.test.ts fails until the
 * committed file equals a fresh render.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DEPLOY_DIR = join(REPO, 'deploy');
export const GENERATED_FILE = join(REPO, 'src/control-plane/install/control-plane.yaml');
export const NPM_SCRIPT = 'npm run generate:install-manifests';

export const HEADER = [
  '# GENERATED FILE: DO NOT EDIT. The meshlet control plane exactly as `kubectl kustomize deploy/`',
  '# renders it, written by scripts/generate-install-manifests.ts; `meshlet install` prints it with',
  `# the Secrets and ConfigMaps of the install (docs/install.md). After changing deploy/, run`,
  `# \`${NPM_SCRIPT}\` (test/cluster/install-check.test.ts fails until this file matches).`,
  '',
].join('\n');

/** The committed file's text for a `kubectl kustomize deploy/` output. */
export function generatedText(rendered: string): string {
  return HEADER + (rendered.endsWith('\n') ? rendered : `${rendered}\n`);
}

/** The rendered part of a committed file (what follows the header). */
export function renderedPart(fileText: string): string {
  return fileText.startsWith(HEADER) ? fileText.slice(HEADER.length) : fileText;
}

function findKubectl(): string {
  if (process.env['KUBECTL']) return process.env['KUBECTL'];
  try {
    const out = execFileSync('bash', [join(REPO, 'test/cluster/build/kubernetes.sh'), '--check'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const path = /^kubectl=(.+)$/m.exec(out)?.[1];
    if (path && existsSync(path)) return path;
  } catch {
    /* not built: fall back to PATH */
  }
  return 'kubectl';
}

function render(kubectl: string): string {
  try {
    return execFileSync(kubectl, ['kustomize', DEPLOY_DIR], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new Error(`${kubectl} not found: set KUBECTL to a kubectl binary, or build the cluster suites' one (test/cluster/build/kubernetes.sh)`);
    throw new Error(`${kubectl} kustomize ${relative(REPO, DEPLOY_DIR)} failed: ${String(e.stderr ?? e.message).trim()}`);
  }
}

function main(argv: string[]): number {
  const check = argv.includes('--check');
  const unknown = argv.filter((a) => a !== '--check');
  if (unknown.length > 0) {
    process.stderr.write(`generate-install-manifests: unknown argument ${JSON.stringify(unknown[0])} (usage: node scripts/generate-install-manifests.ts [--check])\n`);
    return 2;
  }
  const kubectl = findKubectl();
  const text = generatedText(render(kubectl));
  const file = relative(process.cwd(), GENERATED_FILE) || GENERATED_FILE;
  if (check) {
    const committed = existsSync(GENERATED_FILE) ? readFileSync(GENERATED_FILE, 'utf8') : '';
    if (committed === text) {
      process.stdout.write(`${file} is up to date\n`);
      return 0;
    }
    process.stderr.write(`${file} is stale: it differs from \`${kubectl} kustomize deploy/\`; run \`${NPM_SCRIPT}\`\n`);
    return 1;
  }
  writeFileSync(GENERATED_FILE, text);
  process.stdout.write(`wrote ${file} (${kubectl} kustomize deploy/)\n`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`generate-install-manifests: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
