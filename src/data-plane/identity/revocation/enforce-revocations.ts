import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { CaRevocationFeed, type RevocationsFetcher } from './ca-revocation-feed.ts';
import { RevocationListError } from './errors.ts';
import type { FollowedRevocationList } from './followed-revocation-list.ts';
import { RevocationListFile, type RevocationReload } from './revocation-list-file.ts';
import { RevocationMetrics, RevokedConnectionMetrics } from './revocation-metrics.ts';

/** What enforcement needs of the TLS layer (MeshTls has it): close the connections of peers now revoked. */
export interface RevokedPeerCloser {
  closeRevokedPeers(): readonly { spiffeId: string; inbound: number; outbound: number }[];
}

/** Where the list comes from: a mounted file, or the identity service (MESHLET_REVOCATION_LIST=meshlet-ca). */
export type RevocationFeed = FollowedRevocationList;

/** The value of MESHLET_REVOCATION_LIST that means "learn it from the identity service". */
export const FROM_IDENTITY_SERVICE = 'meshlet-ca';

/**
 * The feed MESHLET_REVOCATION_LIST names: `meshlet-ca` polls the identity service through the
 * meshlet-ca source (which must be the identity source: the sidecar's config refuses anything
 * else), a path follows that file.
 */
export function revocationFeed(setting: string, identitySource: unknown): RevocationFeed {
  if (setting !== FROM_IDENTITY_SERVICE) return new RevocationListFile({ path: setting });
  if (typeof (identitySource as Partial<RevocationsFetcher>)?.fetchRevocations !== 'function') {
    throw new RevocationListError('REVOCATION_LIST_UNREADABLE', 'MESHLET_REVOCATION_LIST=meshlet-ca needs the meshlet-ca identity source');
  }
  return new CaRevocationFeed({ fetcher: identitySource as RevocationsFetcher });
}

/**
 * The sidecar's side of MESHLET_REVOCATION_LIST (docs/revocation.md): loads the list (a file
 * that is there but invalid, or an identity service that cannot give one, refuses the start),
 * then on every change closes the open
 * connections of newly revoked peers, counts and logs it — one line per newly revoked ID with
 * the connections closed, one per re-admitted ID — and keeps the last good list on a bad one.
 * `tls()` is asked at change time: the TLS layer is built after the list is loaded, because
 * it checks every handshake against it.
 */
export async function startRevocationEnforcement(setting: string, deps: { registry: Registry; log: Logger; tls: () => RevokedPeerCloser | undefined; identitySource?: unknown }): Promise<RevocationFeed> {
  const list = revocationFeed(setting, deps.identitySource);
  const path = setting;
  const metrics = new RevocationMetrics(deps.registry);
  const closed = new RevokedConnectionMetrics(deps.registry);
  const { log } = deps;
  list.onReload((reload: RevocationReload) => {
    metrics.recordReload(reload);
    if (reload.result === 'rejected') {
      log.warn({ event: 'revocation_list_rejected', source: path, code: reload.error?.code, err: reload.error?.message, revoked: reload.current.size }, 'revocation list not applied; keeping the last good one');
      return;
    }
    if (reload.result === 'absent') {
      log.info({ event: 'revocation_list_absent', source: path }, path === 'meshlet-ca' ? 'the identity service publishes no revocation list (MESHLET_IDENTITY_REVOCATION_LIST unset there); nobody is revoked until it does' : 'no revocation list file yet; nobody is revoked until one appears');
      return;
    }
    log.info({ event: 'revocation_list_loaded', source: path, sha256: reload.current.digest, revoked: reload.current.size }, 'revocation list in force');
    // The list loaded at start: no connection is open yet, and its IDs are counted in the line above.
    const tls = deps.tls();
    if (tls === undefined) return;
    const byId = new Map(tls.closeRevokedPeers().map((c) => [c.spiffeId, c]));
    for (const c of byId.values()) {
      if (c.inbound > 0) closed.closed.inc({ direction: 'inbound' }, c.inbound);
      if (c.outbound > 0) closed.closed.inc({ direction: 'outbound' }, c.outbound);
    }
    for (const spiffeId of reload.current.addedSince(reload.previous)) {
      const c = byId.get(spiffeId);
      log.warn({ event: 'peer_revoked', spiffeId, inboundClosed: c?.inbound ?? 0, outboundClosed: c?.outbound ?? 0 }, `${spiffeId} revoked: its handshakes are refused and its open connections closed`);
    }
    for (const spiffeId of reload.current.removedSince(reload.previous)) {
      log.info({ event: 'peer_unrevoked', spiffeId }, `${spiffeId} is no longer revoked`);
    }
  });
  await list.start();
  return list;
}
