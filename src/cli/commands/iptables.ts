import { spawn } from 'node:child_process';
import type { Command, CommandIo } from '../command.ts';
import { parseFlags } from '../command.ts';
import { MeshletError } from '../../errors/meshlet-error.ts';
import { describeEnv } from '../../config/env.ts';
import { SIDECAR_ENV } from '../../config/sidecar-env.ts';
import { IPTABLES_ENV, IPTABLES_INPUT_ENV, readInterceptionConfig } from '../../../injector/iptables/env.ts';
import { renderIptablesScript } from '../../../injector/iptables/rules.ts';

export type IptablesApplyErrorCode = 'IPTABLES_RESTORE_NOT_FOUND' | 'IPTABLES_RESTORE_FAILED';

/** iptables-restore is missing or rejected the rules; the init container fails, so the pod never runs unprotected. */
export class IptablesApplyError extends MeshletError {
  declare readonly code: IptablesApplyErrorCode;
  constructor(code: IptablesApplyErrorCode, message: string) {
    super(code, message);
  }
}

const FLAGS = {
  'inbound-ports': { type: 'string', env: SIDECAR_ENV.inboundPorts.name },
  'skip-inbound-ports': { type: 'string', env: IPTABLES_ENV.skipInboundPorts.name },
  'skip-outbound-ports': { type: 'string', env: IPTABLES_ENV.skipOutboundPorts.name },
  'skip-outbound-cidrs': { type: 'string', env: IPTABLES_ENV.skipOutboundCidrs.name },
  'proxy-uid': { type: 'string', env: IPTABLES_ENV.proxyUid.name },
} as const;

const flagHelp = `Flags (each overrides its environment variable):
  --inbound-ports LIST        ${FLAGS['inbound-ports'].env}, e.g. 8080:15100/http,9090:15101/grpc
  --skip-inbound-ports LIST   ${FLAGS['skip-inbound-ports'].env}
  --skip-outbound-ports LIST  ${FLAGS['skip-outbound-ports'].env}
  --skip-outbound-cidrs LIST  ${FLAGS['skip-outbound-cidrs'].env}
  --proxy-uid UID             ${FLAGS['proxy-uid'].env}

Environment:
${describeEnv(IPTABLES_INPUT_ENV)}`;

function rulesFromArgs(argv: string[], extra: { 'iptables-restore'?: { type: 'string' } } = {}) {
  const options = Object.fromEntries(Object.keys(FLAGS).map((k) => [k, { type: 'string' as const }]));
  const { values } = parseFlags(argv, { ...options, ...extra });
  const env: Record<string, string | undefined> = { ...process.env };
  for (const [flag, def] of Object.entries(FLAGS)) {
    const v = (values as Record<string, unknown>)[flag];
    if (typeof v === 'string') env[def.env] = v;
  }
  return { text: renderIptablesScript(readInterceptionConfig(env)), values: values as Record<string, unknown> };
}

function restore(binary: string, text: string, io: CommandIo): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, [], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stdout.on('data', (d) => io.stdout.write(d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'ENOENT' ? new IptablesApplyError('IPTABLES_RESTORE_NOT_FOUND', `${binary} not found: the image must ship iptables`) : err);
    });
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new IptablesApplyError('IPTABLES_RESTORE_FAILED', `${binary} exited with ${signal ?? code}: ${stderr.trim() || '(no output)'}`));
    });
    // EPIPE when the binary dies before reading: the 'close' handler reports the real failure.
    child.stdin.on('error', () => {});
    child.stdin.end(text);
  });
}

export const commands: Command[] = [
  {
    name: 'iptables script',
    summary: "print the pod's interception rules (iptables-restore format)",
    help: `Usage: meshlet iptables script [flags]

Prints the iptables-restore script that intercepts a pod's traffic: inbound TCP to each
declared app port is redirected to its sidecar listener, every other inbound TCP port to
the catch-all listener (refused), outbound TCP (except the sidecar's own uid, loopback and
the skip lists) to the outbound listener. Nothing is changed.

${flagHelp}`,
    async run(argv, io) {
      io.stdout.write(rulesFromArgs(argv).text);
      return 0;
    },
  },
  {
    name: 'iptables apply',
    summary: 'install the interception rules with iptables-restore (the init container)',
    help: `Usage: meshlet iptables apply [flags]

Pipes the rules of \`meshlet iptables script\` to iptables-restore, replacing the nat table
of the pod's network namespace atomically (running it twice gives the same rules). Needs
NET_ADMIN and NET_RAW: the injected init container runs it with the sidecar's environment.

  --iptables-restore PATH     the binary to run (default: iptables-restore)

${flagHelp}`,
    async run(argv, io) {
      const { text, values } = rulesFromArgs(argv, { 'iptables-restore': { type: 'string' } });
      const binary = typeof values['iptables-restore'] === 'string' ? values['iptables-restore'] : 'iptables-restore';
      io.stderr.write(text);
      await restore(binary, text, io);
      io.stderr.write('meshlet iptables apply: rules installed\n');
      return 0;
    },
  },
];
