import { readFileSync } from 'node:fs';
import { MeshletError, UsageError } from '../common/errors/meshlet-error.ts';
import { UnknownFlagError, type Command, type CommandIo } from './command.ts';

/** The version in package.json (read when asked, so no command pays for it). */
export function meshletVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : 'unknown';
}

/**
 * The command table. Each group lives in its own module under ./commands and is imported
 * only when used, so `meshlet sidecar` never loads the injector or the bench.
 */
const groups: Record<string, { summary: string; load: () => Promise<{ commands: Command[] }> }> = {
  sidecar: { summary: 'run the sidecar proxy of a pod', load: () => import('./commands/sidecar.ts') },
  identity: { summary: 'run the mesh CA service (Certify gRPC); identity revoke | unrevoke edit a revocation list', load: () => import('./commands/identity.ts') },
  injector: { summary: 'run the admission webhook (/mutate, /validate)', load: () => import('./commands/injector.ts') },
  inject: { summary: 'inject the sidecar into manifests offline', load: () => import('./commands/inject.ts') },
  ca: { summary: 'create a CA, issue SVIDs, export its bundle (ca init | ca issue | ca bundle)', load: () => import('./commands/ca.ts') },
  policy: { summary: 'check and explain authorization policies, and print their NetworkPolicies (policy check | policy explain | policy netpol)', load: () => import('./commands/policy.ts') },
  iptables: { summary: "print or apply a pod's interception rules (the init container)", load: () => import('./commands/iptables.ts') },
  'wait-ready': { summary: "wait until a sidecar's /ready answers 200 (holds the app on old clusters)", load: () => import('./commands/wait-ready.ts') },
  connections: { summary: "list a sidecar's live connections", load: () => import('./commands/connections.ts') },
  top: { summary: 'per-route rates, errors and latency of a sidecar, live', load: () => import('./commands/top.ts') },
  install: { summary: 'print the manifests of a whole installation, for kubectl apply -f -', load: () => import('./commands/install.ts') },
  check: { summary: 'verify a running installation: webhooks, certificates, identity service', load: () => import('./commands/check.ts') },
  demo: { summary: 'run a whole demo mesh on this machine', load: () => import('./commands/demo.ts') },
};

export function topLevelHelp(): string {
  const width = Math.max(...Object.keys(groups).map((n) => n.length));
  const lines = Object.entries(groups).map(([name, g]) => `  ${name.padEnd(width)}  ${g.summary}`);
  return [
    'meshlet — a lightweight service mesh for Kubernetes (SPIFFE mTLS, per-route authorization, metrics)',
    '',
    'Usage: meshlet <command> [flags]',
    '       meshlet --version',
    '',
    'Commands:',
    ...lines,
    '',
    'Run `meshlet <command> --help` for the flags of a command; `meshlet --version` (or `meshlet version`) prints the version.',
  ].join('\n');
}

const defaultIo: CommandIo = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin };

/** Runs the CLI and returns the exit status: 0 ok, 1 command failed, 2 usage error. */
export async function main(argv: string[], io: CommandIo = defaultIo): Promise<number> {
  const [groupName, ...rest] = argv;
  if (groupName === undefined || groupName === '--help' || groupName === '-h' || groupName === 'help') {
    io.stdout.write(topLevelHelp() + '\n');
    return groupName === undefined ? 2 : 0;
  }
  if (groupName === '--version' || groupName === '-V' || groupName === 'version') {
    if (rest.length > 0) {
      io.stderr.write(`meshlet ${groupName}: takes no arguments (got ${rest.join(' ')})\n`);
      return 2;
    }
    io.stdout.write(`meshlet ${meshletVersion()}\n`);
    return 0;
  }
  const group = groups[groupName];
  if (!group) {
    io.stderr.write(`meshlet: unknown command "${groupName}"\n\n${topLevelHelp()}\n`);
    return 2;
  }
  let commands: Command[];
  try {
    ({ commands } = await group.load());
  } catch (err) {
    // The image ships src/ without src/dev/ (docs/architecture.md): the demo is not in it.
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String((err as Error).message).includes('/src/dev/')) {
      io.stderr.write(`meshlet ${groupName}: DEV_TOOLING_ABSENT: "${groupName}" is development tooling and is not installed here (the image leaves out src/dev/); run it from a clone of the repository: npm ci && npm start\n`);
      return 1;
    }
    throw err;
  }
  // A group either is one command ("sidecar") or holds subcommands ("ca init"), or both
  // ("identity" runs the service; "identity revoke" is a subcommand): a subcommand name wins.
  const subcommand = rest[0] === undefined ? undefined : commands.find((c) => c.name === `${groupName} ${rest[0]}`);
  let command = subcommand ?? commands.find((c) => c.name === groupName);
  let args = subcommand ? rest.slice(1) : rest;
  if (!command) {
    const sub = rest[0];
    const groupHelp = () =>
      [`Usage: meshlet ${groupName} <subcommand> [flags]`, '', 'Subcommands:', ...commands.map((c) => `  ${c.name.padEnd(18)}  ${c.summary}`)].join('\n');
    if (sub === undefined || sub === '--help' || sub === '-h') {
      io.stdout.write(groupHelp() + '\n');
      return sub === undefined ? 2 : 0;
    }
    command = commands.find((c) => c.name === `${groupName} ${sub}`);
    if (!command) {
      io.stderr.write(`meshlet: unknown subcommand "${groupName} ${sub}"\n\n${groupHelp()}\n`);
      return 2;
    }
    args = rest.slice(1);
  }
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout.write(command.help + '\n');
    return 0;
  }
  try {
    return await command.run(args, io);
  } catch (err) {
    if (err instanceof UnknownFlagError) {
      // A typo: one line, the closest flag, and where the rest is; not the whole help.
      io.stderr.write(`meshlet ${command.name}: ${err.message}\nRun \`meshlet ${command.name} --help\` for its flags.\n`);
      return 2;
    }
    if (err instanceof UsageError) {
      io.stderr.write(`meshlet ${command.name}: ${err.message}\n\n${command.help}\n`);
      return 2;
    }
    if (err instanceof MeshletError) {
      io.stderr.write(`meshlet ${command.name}: ${err.code}: ${err.message}\n`);
      return 1;
    }
    // Anything else (a filesystem error such as EACCES, or a bug) is still one line for the
    // user; the stack only when asked for, since it helps us and nobody else.
    const e = err as NodeJS.ErrnoException;
    const code = typeof e?.code === 'string' ? e.code : 'INTERNAL_ERROR';
    // Node's errno messages already start with their code ("EACCES: permission denied, …").
    const message = String(e?.message ?? err).replace(new RegExp(`^${code}: `), '');
    io.stderr.write(`meshlet ${command.name}: ${code}: ${message}\n`);
    if (process.env.MESHLET_DEBUG) io.stderr.write(`${e?.stack ?? ''}\n`);
    return 1;
  }
}
