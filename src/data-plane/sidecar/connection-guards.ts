import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import type { SidecarConfig } from './sidecar-env.ts';
import { ConnectionGuard, type ListenerName, type ListenerObserver } from '../../common/net/connection-guard.ts';
import { describeClamp, fitDescriptorBudget, readOpenFilesLimit, type DescriptorDemand } from '../../common/net/descriptor-budget.ts';
import { CATCH_ALL_MAX_CONNECTIONS } from '../proxy/tcp/catch-all.ts';
import { adminDescriptorDemand } from '../admin/admin-server.ts';

/** Whether the kernel has IPv6 (no /proc/net/if_inet6: none, or not Linux). */
export const KERNEL_HAS_IPV6 = existsSync('/proc/net/if_inet6');

export type SidecarGuards = Readonly<Record<ListenerName & ('inbound' | 'inbound_tcp' | 'outbound' | 'outbound_tcp' | 'catch_all' | 'admin'), ConnectionGuard>>;

/**
 * One connection guard per kind of sidecar listener, with caps that fit the open-files limit:
 * every proxied connection is budgeted two descriptors (itself and the upstream connection it
 * causes), the catch-all one (it forwards nothing), the admin port two (an app probe dials the
 * app) and is never lowered, and MESHLET_FD_RESERVE stays free for SVID rotation, policy
 * reload and logs. Caps that do not fit are lowered in proportion and the sidecar says so;
 * a limit that cannot even hold the reserve refuses the start (DescriptorBudgetError).
 */
export function sidecarConnectionGuards(c: Readonly<SidecarConfig>, observer: ListenerObserver, log: Logger, limitsFile?: string): SidecarGuards {
  const httpPorts = c.inboundPorts.filter((p) => p.protocol !== 'tcp').length;
  const demands: DescriptorDemand[] = [
    { listener: 'inbound', ports: httpPorts, maxConnections: c.maxInboundConnections, perConnection: 2, clampable: true },
    { listener: 'inbound_tcp', ports: c.inboundPorts.length - httpPorts, maxConnections: c.maxInboundConnections, perConnection: 2, clampable: true },
    // Two ports' worth where IPv6 exists: 127.0.0.1 and its [::1] twin each hold up to the cap.
    { listener: 'outbound', ports: KERNEL_HAS_IPV6 ? 2 : 1, maxConnections: c.maxOutboundConnections, perConnection: 2, clampable: true },
    { listener: 'outbound_tcp', ports: c.outboundTcp.length, maxConnections: c.maxOutboundConnections, perConnection: 2, clampable: true },
    { listener: 'catch_all', ports: 1, maxConnections: CATCH_ALL_MAX_CONNECTIONS, perConnection: 1, clampable: true },
    adminDescriptorDemand({ maxConnections: c.maxAdminConnections, forwardsAppProbes: true }),
  ];
  const budget = fitDescriptorBudget(demands, c.fdReserve, readOpenFilesLimit(limitsFile));
  if (budget.clamped) {
    log.warn(
      { event: 'connection_caps_lowered', openFilesLimit: budget.limit, reserve: budget.reserve, wanted: budget.demand, caps: describeClamp(demands, budget) },
      'connection caps lowered to fit the open-files limit; raise the container\'s nofile limit or lower MESHLET_MAX_*_CONNECTIONS',
    );
  }
  const guard = (listener: DescriptorDemand['listener']): ConnectionGuard => new ConnectionGuard({ listener, maxConnections: budget.caps.get(listener)!, observer });
  return {
    inbound: guard('inbound'),
    inbound_tcp: guard('inbound_tcp'),
    outbound: guard('outbound'),
    outbound_tcp: guard('outbound_tcp'),
    catch_all: guard('catch_all'),
    admin: guard('admin'),
  };
}
