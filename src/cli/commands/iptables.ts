import { spawn } from 'node:child_process';
import type { Command, CommandIo } from '../command.ts';
import { parseFlags, readWithFlags } from '../command.ts';
import { MeshletError } from '../../common/errors/meshlet-error.ts';
import { describeEnv } from '../../common/config/env.ts';
import { SIDECAR_ENV } from '../../data-plane/sidecar/sidecar-env.ts';
import { IPTABLES_ENV, IPTABLES_INPUT_ENV, readInterceptionConfig } from '../../control-plane/injector/iptables/env.ts';
import { renderIptablesScript, type InterceptionConfig } from '../../control-plane/injector/iptables/rules.ts';
import { readIpv6State } from '../../control-plane/injector/iptables/ipv6-state.ts';
import type { IpFamily } from '../../control-plane/injector/iptables/ip-cidr.ts';

export type IptablesApplyErrorCode = 'IPTABLES_RESTORE_NOT_FOUND' | 'IPTABLES_RESTORE_FAILED' | 'IP6TABLES_RESTORE_NOT_FOUND' | 'IP6TABLES_RESTORE_FAILED';

/**
 * iptables-restore or ip6tables-restore is missing or rejected the rules; the init container
 * fails, so the pod never runs unprotected.
 */
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
  --skip-outbound-cidrs LIST  ${FLAGS['skip-outbound-cidrs'].env} (IPv4 and IPv6; each goes into its family's rules)
  --proxy-uid UID             ${FLAGS['proxy-uid'].env}

Environment:
${describeEnv(IPTABLES_INPUT_ENV)}`;

type ExtraFlags = Record<string, { type: 'string' | 'boolean' }>;

function configFromArgs(argv: string[], extra: ExtraFlags = {}): { config: Readonly<InterceptionConfig>; values: Record<string, unknown> } {
  const options = Object.fromEntries(Object.keys(FLAGS).map((k) => [k, { type: 'string' as const }]));
  const { values } = parseFlags(argv, { ...options, ...extra });
  // A bad flag value is a usage error (exit 2) naming the flag; a bad variable stays exit 1.
  const flagToEnv = Object.fromEntries(Object.entries(FLAGS).map(([flag, def]) => [flag, def.env]));
  return { config: readWithFlags(values, flagToEnv, readInterceptionConfig), values: values as Record<string, unknown> };
}

const TOOL: Readonly<Record<IpFamily, { name: string; notFound: IptablesApplyErrorCode; failed: IptablesApplyErrorCode }>> = {
  ipv4: { name: 'iptables-restore', notFound: 'IPTABLES_RESTORE_NOT_FOUND', failed: 'IPTABLES_RESTORE_FAILED' },
  ipv6: { name: 'ip6tables-restore', notFound: 'IP6TABLES_RESTORE_NOT_FOUND', failed: 'IP6TABLES_RESTORE_FAILED' },
};

function restore(family: IpFamily, binary: string, text: string, io: CommandIo): Promise<void> {
  const tool = TOOL[family];
  return new Promise((resolve, reject) => {
    const child = spawn(binary, [], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stdout.on('data', (d) => io.stdout.write(d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'ENOENT' ? new IptablesApplyError(tool.notFound, `${binary} not found: the image must ship iptables (it provides ${tool.name})`) : err);
    });
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new IptablesApplyError(tool.failed, `${binary} exited with ${signal ?? code}: ${stderr.trim() || '(no output)'}`));
    });
    // EPIPE when the binary dies before reading: the 'close' handler reports the real failure.
    child.stdin.on('error', () => {});
    child.stdin.end(text);
  });
}

export const commands: Command[] = [
  {
    name: 'iptables script',
    summary: "print the pod's interception rules (iptables-restore format; --ipv6 for ip6tables-restore)",
    help: `Usage: meshlet iptables script [--ipv6] [flags]

Prints the iptables-restore script that intercepts a pod's traffic: inbound TCP to each
declared app port is redirected to its sidecar listener, every other inbound TCP port to
the catch-all listener (refused), outbound TCP (except the sidecar's own uid, loopback and
the skip lists) to the outbound listener. Nothing is changed.

  --ipv6                      print the IPv6 rules instead (ip6tables-restore format): the
                              same chains, ::1 as loopback, the IPv6 skip CIDRs

${flagHelp}`,
    async run(argv, io) {
      const { config, values } = configFromArgs(argv, { ipv6: { type: 'boolean' } });
      io.stdout.write(renderIptablesScript(config, values.ipv6 === true ? 'ipv6' : 'ipv4'));
      return 0;
    },
  },
  {
    name: 'iptables apply',
    summary: 'install the interception rules with iptables-restore and ip6tables-restore (the init container)',
    help: `Usage: meshlet iptables apply [flags]

Pipes the rules of \`meshlet iptables script\` to iptables-restore, then the IPv6 rules of
\`meshlet iptables script --ipv6\` to ip6tables-restore, each replacing the nat table of its
family in the pod's network namespace atomically (running it twice gives the same rules).
Needs NET_ADMIN and NET_RAW: the injected init container runs it with the sidecar's environment.

IPv6, decided from the pod's own network namespace:
  the kernel has no IPv6 (no /proc/net/if_inet6)    IPv6 rules skipped: nothing to intercept
  IPv6 disabled on every interface (disable_ipv6=1)  IPv6 rules installed; a failure is a warning
  otherwise (IPv6 up on any interface)               IPv6 rules installed; a failure exits 1,
                                                     so the pod never runs with IPv6 open

  --iptables-restore PATH     the IPv4 binary to run (default: iptables-restore)
  --ip6tables-restore PATH    the IPv6 binary to run (default: ip6tables-restore)

${flagHelp}`,
    async run(argv, io) {
      const { config, values } = configFromArgs(argv, { 'iptables-restore': { type: 'string' }, 'ip6tables-restore': { type: 'string' } });
      const binary = (flag: string, dflt: string) => (typeof values[flag] === 'string' ? (values[flag] as string) : dflt);
      const v4 = renderIptablesScript(config, 'ipv4');
      io.stderr.write(v4);
      await restore('ipv4', binary('iptables-restore', TOOL.ipv4.name), v4, io);
      io.stderr.write('meshlet iptables apply: IPv4 rules installed\n');

      const ipv6 = readIpv6State();
      if (ipv6.state === 'absent') {
        io.stderr.write(`meshlet iptables apply: IPv6 rules skipped: ${ipv6.detail}, so there is no IPv6 traffic to intercept\n`);
      } else {
        const v6 = renderIptablesScript(config, 'ipv6');
        io.stderr.write(v6);
        try {
          await restore('ipv6', binary('ip6tables-restore', TOOL.ipv6.name), v6, io);
          io.stderr.write('meshlet iptables apply: IPv6 rules installed\n');
        } catch (err) {
          // IPv6 up and not intercepted would be a bypass of the sidecar: fail the init container.
          if (!(err instanceof IptablesApplyError)) throw err;
          if (ipv6.state === 'enabled') {
            throw new IptablesApplyError(err.code, `${err.message}; ${ipv6.detail}: without these rules IPv6 connections would reach the app around the sidecar, so the pod must not start`);
          }
          io.stderr.write(`meshlet iptables apply: WARNING: IPv6 rules not installed (${err.code}: ${err.message}); ${ipv6.detail}, so no IPv6 traffic can reach the pod or leave it\n`);
        }
      }
      io.stderr.write('meshlet iptables apply: rules installed\n');
      return 0;
    },
  },
];
