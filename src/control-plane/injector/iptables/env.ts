import { deepFreeze, EnvReader, FieldError, list, port, type Env, type EnvVar } from '../../../common/config/env.ts';
import { INBOUND_LISTEN_BASE, SIDECAR_ENV } from '../../../data-plane/sidecar/sidecar-env.ts';
import { PROXY_UID } from '../patch/pod-layout.ts';
import type { InterceptionConfig } from './rules.ts';
import { ipCidr } from './ip-cidr.ts';

/**
 * What the iptables init container reads: the sidecar's own port variables (the same values
 * the sidecar binds, so rules and listeners agree) plus the skip lists only iptables needs.
 */
export const IPTABLES_ENV = {
  proxyUid: { name: 'MESHLET_PROXY_UID', default: String(PROXY_UID), description: "the sidecar's uid, whose connections are never redirected", parse: uid },
  skipInboundPorts: { name: 'MESHLET_SKIP_INBOUND_PORTS', default: '', description: 'app ports reached directly, bypassing the sidecar (comma-separated)', parse: list(port) },
  skipOutboundPorts: { name: 'MESHLET_SKIP_OUTBOUND_PORTS', default: '', description: 'destination ports the app reaches directly (comma-separated)', parse: list(port) },
  skipOutboundCidrs: { name: 'MESHLET_SKIP_OUTBOUND_CIDRS', default: '', description: 'destination IPv4 and IPv6 CIDRs the app reaches directly (comma-separated)', parse: list(ipCidr) },
} satisfies Record<string, EnvVar<unknown>>;

/** Every variable `meshlet iptables` reads, for --help. */
export const IPTABLES_INPUT_ENV: readonly EnvVar<unknown>[] = [
  SIDECAR_ENV.inboundPorts,
  SIDECAR_ENV.inboundCatchAllPort,
  SIDECAR_ENV.outboundPort,
  SIDECAR_ENV.adminPort,
  ...Object.values(IPTABLES_ENV),
];

function uid(raw: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) > 2 ** 31 - 1) throw new FieldError('must be a numeric uid');
  if (raw === '0') throw new FieldError('must not be 0: root traffic would bypass the sidecar');
  return Number(raw);
}

/** Env -> interception config; throws ConfigError listing every bad variable. */
export function readInterceptionConfig(env: Env): Readonly<InterceptionConfig> {
  const r = new EnvReader(env);
  const entries = r.read(SIDECAR_ENV.inboundPorts) ?? [];
  const config: InterceptionConfig = {
    // Same rule as readSidecarConfig: an entry without LISTEN_PORT gets INBOUND_LISTEN_BASE + its index.
    inbound: entries.map((e, i) => ({ appPort: e.appPort, listenPort: e.listenPort ?? INBOUND_LISTEN_BASE + i })),
    inboundCatchAllPort: r.read(SIDECAR_ENV.inboundCatchAllPort),
    outboundPort: r.read(SIDECAR_ENV.outboundPort),
    adminPort: r.read(SIDECAR_ENV.adminPort),
    proxyUid: r.read(IPTABLES_ENV.proxyUid),
    skipInboundPorts: r.read(IPTABLES_ENV.skipInboundPorts) ?? [],
    skipOutboundPorts: r.read(IPTABLES_ENV.skipOutboundPorts) ?? [],
    skipOutboundCidrs: r.read(IPTABLES_ENV.skipOutboundCidrs) ?? [],
  };
  const sidecarPorts = new Set([config.inboundCatchAllPort, config.outboundPort, config.adminPort]);
  for (const p of config.inbound) {
    if (sidecarPorts.has(p.appPort)) r.problem(SIDECAR_ENV.inboundPorts.name, `app port ${p.appPort} is a port of the sidecar itself`);
  }
  r.done();
  return deepFreeze(config);
}
