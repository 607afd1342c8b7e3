import { existsSync, readdirSync, readFileSync } from 'node:fs';

/**
 * Can the pod's network namespace carry IPv6? Decides what `meshlet iptables apply` does with
 * the IPv6 rules (docs/injector.md, "IPv6"):
 *
 * - `absent`: the kernel has no IPv6 (booted with ipv6.disable=1 or built without it; then
 *   /proc/net/if_inet6 does not exist). No IPv6 socket can exist, so there is nothing to
 *   intercept: the IPv6 rules are not installed.
 * - `disabled`: the kernel has IPv6 but every interface of the pod has
 *   net.ipv6.conf.<if>.disable_ipv6=1, so the stack drops every IPv6 packet. Turning it back on
 *   needs NET_ADMIN in the pod, which only the init container has. The rules are installed
 *   anyway (defence in depth); if that fails, it is a warning.
 * - `enabled`: any interface carries IPv6. The rules must be installed, or the init container
 *   fails: an IPv6 connection would otherwise reach the app without the sidecar.
 *
 * /proc/net and /proc/sys/net show the network namespace of the reading process, which is the
 * pod's for the init container.
 */
export type Ipv6State = { state: 'absent' | 'disabled' | 'enabled'; detail: string };

export function readIpv6State(procRoot = '/proc'): Ipv6State {
  if (!existsSync(`${procRoot}/net/if_inet6`)) {
    return { state: 'absent', detail: `the kernel has no IPv6 (${procRoot}/net/if_inet6 does not exist)` };
  }
  const confDir = `${procRoot}/sys/net/ipv6/conf`;
  let interfaces: string[];
  try {
    interfaces = readdirSync(confDir).filter((name) => name !== 'all' && name !== 'default').sort();
  } catch {
    // Unreadable settings: assume IPv6 works (fail closed: the rules are then required).
    return { state: 'enabled', detail: `IPv6 is present and ${confDir} cannot be read` };
  }
  const enabled = interfaces.filter((name) => readSetting(`${confDir}/${name}/disable_ipv6`) !== '1');
  if (interfaces.length > 0 && enabled.length === 0) {
    return { state: 'disabled', detail: `IPv6 is disabled on every interface of the pod (${interfaces.join(', ')}: net.ipv6.conf.<interface>.disable_ipv6=1)` };
  }
  return { state: 'enabled', detail: `IPv6 is enabled on ${enabled.length > 0 ? enabled.join(', ') : 'the pod'}` };
}

function readSetting(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}
