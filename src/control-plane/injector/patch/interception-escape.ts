import { PodRefusedError } from './errors.ts';
import { PROXY_UID } from './pod-layout.ts';
import type { Container, Pod } from './pod-shape.ts';

/** The securityContext fields that decide whether a container could leave interception. */
interface SecurityContext {
  runAsUser?: unknown;
  privileged?: unknown;
  capabilities?: { add?: unknown };
}

/** Capabilities that let a process rewrite the pod's nat table (ALL includes NET_ADMIN). */
const RULE_REWRITING_CAPABILITIES = new Set(['NET_ADMIN', 'ALL']);

/**
 * Refuses a pod in which one of the pod's own containers could leave interception once it is
 * injected (issue 11 item 13), naming the container and the field:
 *
 * - it runs as the proxy's uid (2020), set on the container or inherited from the pod's
 *   `spec.securityContext.runAsUser`: iptables never redirects that uid's connections (the
 *   sidecar's own would loop), so the container's outbound traffic would skip the sidecar;
 * - it is privileged, or adds NET_ADMIN (or ALL): it could rewrite or flush the pod's iptables
 *   rules, inbound included.
 *
 * What cannot be seen here (docs/injector.md, "Interception escapes"): the uid an image runs as
 * when no runAsUser is set (its USER, which only the runtime knows), and a root container that
 * changes its own uid (CAP_SETUID is in the runtime's default set) — Pod Security admission
 * (`runAsNonRoot`, dropping capabilities) is what closes those.
 */
export function checkInterceptionEscapes(pod: Pod, proxyUid: number = PROXY_UID): void {
  const problems: string[] = [];
  const why = `the meshlet proxy's uid, whose connections iptables never redirects: the container's traffic would bypass the sidecar`;
  const podUid = (pod.spec.securityContext as SecurityContext | undefined)?.runAsUser;
  const lists = [
    ['initContainers', pod.spec.initContainers ?? []],
    ['containers', pod.spec.containers],
  ] as const;
  for (const [list, containers] of lists) {
    containers.forEach((c: Container | undefined, i) => {
      if (!c || typeof c !== 'object') return;
      const field = `spec.${list}[${i}].securityContext`;
      const sc = (c.securityContext ?? {}) as SecurityContext;
      if (sc.runAsUser === proxyUid) {
        problems.push(`container ${c.name}: ${field}.runAsUser is ${proxyUid}, ${why}; run it as another uid`);
      } else if (sc.runAsUser === undefined && podUid === proxyUid) {
        problems.push(`container ${c.name}: runs as uid ${proxyUid} from spec.securityContext.runAsUser (pod level), ${why}; set another runAsUser on the pod or on the container`);
      }
      if (sc.privileged === true) {
        problems.push(`container ${c.name}: ${field}.privileged is true: it could rewrite the pod's iptables rules and bypass the sidecar`);
      }
      const added = Array.isArray(sc.capabilities?.add) ? (sc.capabilities.add as unknown[]) : [];
      for (const cap of added) {
        const name = typeof cap === 'string' ? cap.toUpperCase().replace(/^CAP_/, '') : '';
        if (RULE_REWRITING_CAPABILITIES.has(name)) {
          problems.push(`container ${c.name}: ${field}.capabilities.add has ${cap as string}: it could rewrite the pod's iptables rules and bypass the sidecar`);
        }
      }
    });
  }
  if (problems.length > 0) throw new PodRefusedError('INJECTOR_INTERCEPTION_ESCAPE', problems);
}
