/** One Service as name resolution sees it. */
export interface ServiceName {
  name: string;
  namespace: string;
  vip: string;
}

/**
 * The /etc/hosts of a pod (`ip netns exec` bind-mounts /etc/netns/<ns>/hosts over it).
 * Service names follow cluster DNS: `<svc>.<ns>.svc.cluster.local`, `<svc>.<ns>.svc`,
 * `<svc>.<ns>`, and the bare `<svc>` only from a pod in the same namespace (what the pod's
 * resolv.conf search path gives in Kubernetes).
 */
export function renderHostsFile(pod: { name: string; namespace: string; ip: string }, services: readonly ServiceName[]): string {
  const lines = ['127.0.0.1 localhost', '::1 localhost ip6-localhost ip6-loopback', `${pod.ip} ${pod.name}`];
  for (const s of services) {
    const names = [`${s.name}.${s.namespace}.svc.cluster.local`, `${s.name}.${s.namespace}.svc`, `${s.name}.${s.namespace}`];
    if (s.namespace === pod.namespace) names.push(s.name);
    lines.push(`${s.vip} ${names.join(' ')}`);
  }
  return lines.join('\n') + '\n';
}

/**
 * A name missing from the hosts file must fail at once, not wait for the host's resolvers
 * (unreachable from a pod): nothing listens on 127.0.0.1:53 in a pod, so lookups are refused.
 */
export const POD_RESOLV_CONF = 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n';
