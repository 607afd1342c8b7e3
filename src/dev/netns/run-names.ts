import { randomBytes } from 'node:crypto';
import { HarnessError } from './errors.ts';

/**
 * Every name a cluster creates carries its run id, so concurrent runs never collide and the
 * leftover sweeper can tell whose a namespace is (see leftover-sweeper.ts).
 *
 *   mlnode-<run>        the "node": a netns holding the bridge, service DNAT and routing
 *   mlp-<run>-<pod>     one netns per pod
 *   mlbr<run>           the bridge (inside mlnode-<run>)
 *   mlh<run>            the host's veth into the bridge (root netns; only with host access)
 *   /tmp/meshlet-e2e-<run>/   volume directories (ConfigMaps, Secrets, tokens mounted "into" pods)
 */
export const RUN_ID_PATTERN = /^[0-9a-f]{6}$/;
export const OWNER_DIR = '/run/meshlet-e2e';

export function newRunId(): string {
  return randomBytes(3).toString('hex');
}

export const nodeNetnsName = (run: string) => `mlnode-${run}`;
export const podNetnsName = (run: string, pod: string) => `mlp-${run}-${pod}`;
export const bridgeName = (run: string) => `mlbr${run}`;
export const hostLinkName = (run: string) => `mlh${run}`;
export const ownerFile = (run: string) => `${OWNER_DIR}/${run}.pid`;
export const volumesRoot = (run: string) => `/tmp/meshlet-e2e-${run}`;

/** The run id a harness-made netns or link belongs to, or undefined for anything else. */
export function runOfName(name: string): string | undefined {
  return /^(?:mlnode-([0-9a-f]{6})|mlp-([0-9a-f]{6})-.+|mlh([0-9a-f]{6})|mlbr([0-9a-f]{6}))$/.exec(name)?.slice(1).find((g) => g !== undefined);
}

// A DNS-1123 label (what Kubernetes accepts for pod and service names), short enough that
// `mlp-<run>-<name>` stays readable in `ip netns list`.
const LABEL = /^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$/;

export function checkLabel(kind: string, name: string): string {
  if (!LABEL.test(name)) throw new HarnessError('E2E_BAD_NAME', `${kind} name ${JSON.stringify(name)} must be a DNS-1123 label of at most 40 characters ([a-z0-9-], starting and ending alphanumeric)`);
  return name;
}
