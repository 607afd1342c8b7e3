import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { TLSSocket, connect as tlsConnect, createSecureContext, type ConnectionOptions, type DetailedPeerCertificate, type PeerCertificate, type SecureContext, type SecureContextOptions, type Server, type TlsOptions } from 'node:tls';
import { parseSpiffeId, validateTrustDomain } from '../../common/identity/spiffe-id.ts';
import type { IdentitySnapshot, SvidSource } from '../identity/svid.ts';
import { TlsPeerError, TlsSetupError } from './errors.ts';
import { MAX_CHAIN_LENGTH } from '../identity/svid-verify.ts';
import { KnownIntermediates } from './known-intermediates.ts';
import { DEFAULT_KEY_EXCHANGE, keyExchangeGroups, type KeyExchangeMode } from './key-exchange.ts';
import { captureChainBeforeNode, peerChainOf, presentedChain } from './peer-chain.ts';
import { verifyPeerChain, type VerifiedPeer } from './peer-verifier.ts';
import { meshContextOptions, type TicketSettings } from './secure-context.ts';
import { ClientSessionCache, SESSION_LIFETIME_CAP_MS, type CachedSession } from './session-cache.ts';
import { sessionPeerCertificate } from './session-peer.ts';

export { TlsPeerError, TlsSetupError } from './errors.ts';
export { handshakeFailureReason, type HandshakeFailureReason } from './handshake-failure-reason.ts';
export { KEY_EXCHANGE_GROUPS, KEY_EXCHANGE_MODES, negotiatedGroup, type KeyExchangeMode } from './key-exchange.ts';
export type { VerifiedPeer } from './peer-verifier.ts';
export { SESSION_LIFETIME_CAP_MS } from './session-cache.ts';

/** Who the server at the other end must be. Empty: any workload of our own trust domain. */
export interface ExpectedPeer {
  /** Exactly this SPIFFE ID (the destination's identity, when known). */
  spiffeId?: string;
  /** Any workload of one of these trust domains (default: our own). Ignored when spiffeId is set. */
  trustDomains?: readonly string[];
}

type RotateListener = (snapshot: IdentitySnapshot) => void;

export interface MeshTlsOptions {
  /**
   * TLS 1.3 session resumption between sidecars (MESHLET_TLS_SESSION_RESUMPTION; default on):
   * outbound, connect() caches each destination's session and offers it on the next
   * connection; inbound, servers issue tickets under keys that rotate. Off: every connection
   * is a full handshake, and no session is resumed in either direction.
   */
  readonly sessionResumption?: boolean;
  /**
   * The TLS 1.3 key exchange groups offered and accepted, both directions
   * (MESHLET_TLS_KEY_EXCHANGE; default `hybrid`: X25519MLKEM768 preferred, X25519 / P-256 /
   * P-384 for peers without it; `classical`: no ML-KEM; `pq-only`: X25519MLKEM768 or refuse).
   * docs/tls.md "Key exchange".
   */
  readonly keyExchange?: KeyExchangeMode;
  /**
   * The revocation list in force (MESHLET_REVOCATION_LIST, docs/revocation.md): a peer whose
   * verified SPIFFE ID it names is refused on every handshake, full or resumed, both directions
   * (TLS_PEER_REVOKED, reason `revoked`), and closeRevokedPeers() closes the connections already
   * open to one. Absent: no check and no bookkeeping at all.
   */
  readonly revoked?: RevokedIdentities;
  /**
   * Close open connections whose verified peer's trust domain loses its bundle (a federated
   * domain removed: MESHLET_FEDERATION_BUNDLES, docs/identity-sources.md#federation) when new
   * material is installed; `onTrustLost` hears what was closed. Needs the per-peer bookkeeping
   * the revocation list keeps, so it turns that on by itself. Absent: open connections stay.
   */
  readonly closeOnTrustLoss?: boolean;
  readonly onTrustLost?: (closed: readonly TrustLossClosures[]) => void;
}

/** What a bundle change closed for one trust domain that lost its bundle. */
export interface TrustLossClosures {
  readonly trustDomain: string;
  readonly inbound: number;
  readonly outbound: number;
}

/** The one question the TLS layer asks of a revocation list: is this verified SPIFFE ID revoked? */
const SPIFFE_SCHEME = 'spiffe://';

export interface RevokedIdentities {
  has(spiffeId: string): boolean;
}

/** What closeRevokedPeers() closed for one revoked SPIFFE ID. */
export interface RevokedPeerClosures {
  readonly spiffeId: string;
  /** Connections a revoked caller had open to us. */
  readonly inbound: number;
  /** Connections we had open to a revoked server (pooled HTTP/1.1, HTTP/2 sessions, opaque TCP). */
  readonly outbound: number;
}

/** What a connection made by connect() learned of its server, for the session it may cache. */
interface ClientConnectionState {
  /** Cache key (destination + expected identity); undefined with resumption off. */
  readonly key: string | undefined;
  /** The session offered, if any. */
  readonly offered: CachedSession | undefined;
  /** The rotation this connection was made under: a session from an older one is not kept. */
  readonly generation: number;
  /** Set once the server's identity is verified: by checkServerIdentity (full handshake) or the resumed check. */
  verified?: { readonly chain: readonly Buffer[]; readonly peer: VerifiedPeer; readonly at: number };
}

/**
 * The sidecar's mTLS: SecureContexts built from the current SVID and bundles (rebuilt once
 * per rotation, never per connection), peer verification per the X.509-SVID spec on both
 * sides, and rotation that swaps contexts under running servers without touching the
 * connections already open (a TLS connection keeps the keys it was handshaked with; only
 * new handshakes see the new context).
 */
export class MeshTls {
  #snapshot!: IdentitySnapshot;
  #options!: SecureContextOptions;
  #context!: SecureContext;
  readonly #servers = new Map<Server, () => void>();
  readonly #rotateListeners = new Set<RotateListener>();
  /** One verdict per socket, so the fail-closed gate and the caller agree and verify once. */
  readonly #verdicts = new WeakMap<TLSSocket, VerifiedPeer | TlsPeerError>();
  readonly #unsubscribe: () => void;
  readonly #resumption: boolean;
  readonly #keyExchange: KeyExchangeMode;
  /** Outbound: the latest session per destination and expected identity. */
  readonly #sessions = new ClientSessionCache();
  /** Inbound: intermediates of verified callers, to link a resumed caller's leaf to its root. */
  readonly #intermediates = new KnownIntermediates();
  #ticketKeyTimer: NodeJS.Timeout | undefined;
  /** Bumped on every rotation: sessions made under older material are not kept. */
  #generation = 0;
  #closed = false;
  readonly #revoked: RevokedIdentities | undefined;
  /**
   * With a revocation list or closeOnTrustLoss only: every open connection whose peer this MeshTls verified, by the
   * peer's SPIFFE ID, and which side we are — so a newly revoked ID's connections are found
   * without walking every connection. Sockets leave on 'close'.
   */
  readonly #openByPeer = new Map<string, Map<TLSSocket, 'inbound' | 'outbound'>>();
  /** Whether #openByPeer is kept: a revocation list, or closeOnTrustLoss. */
  readonly #trackPeers: boolean;
  readonly #closeOnTrustLoss: boolean;
  readonly #onTrustLost: ((closed: readonly TrustLossClosures[]) => void) | undefined;

  constructor(source: SvidSource, options: MeshTlsOptions = {}) {
    this.#resumption = options.sessionResumption ?? true;
    this.#keyExchange = options.keyExchange ?? DEFAULT_KEY_EXCHANGE;
    this.#revoked = options.revoked;
    this.#closeOnTrustLoss = options.closeOnTrustLoss === true;
    this.#trackPeers = this.#revoked !== undefined || this.#closeOnTrustLoss;
    this.#onTrustLost = options.onTrustLost;
    // An unknown setting, or groups this Node's OpenSSL lacks: refused here, before any SVID work.
    keyExchangeGroups(this.#keyExchange);
    const snapshot = source.current();
    if (snapshot === undefined) {
      throw new TlsSetupError('TLS_SOURCE_NOT_STARTED', `MeshTls needs a started identity source; the ${source.kind} source has no SVID yet (await source.start() first)`);
    }
    this.#install(snapshot);
    this.#unsubscribe = source.onUpdate((next) => this.#rotate(next));
  }

  /** Our own SPIFFE ID (the current SVID's). */
  get localId(): string {
    return this.#snapshot.svid.spiffeId.id;
  }

  /** Whether TLS 1.3 sessions are resumed (MeshTlsOptions.sessionResumption). */
  get sessionResumption(): boolean {
    return this.#resumption;
  }

  /** The key exchange setting (MeshTlsOptions.keyExchange). */
  get keyExchange(): KeyExchangeMode {
    return this.#keyExchange;
  }

  /** The outbound session cache (what connect() offers), for inspection and tests. */
  get sessions(): ClientSessionCache {
    return this.#sessions;
  }

  /** The key connect() caches the session of `target` under when `expected` is pinned there. */
  sessionKey(target: { host: string; port: number }, expected: ExpectedPeer): string {
    return ClientSessionCache.key(target, this.#expectation(expected).key);
  }

  /**
   * Options for tls.createServer. The client certificate is requested, and Node is told not
   * to judge it (rejectUnauthorized: false) because Node's verdict is against the union of
   * bundles and, when it refuses, it drops the socket without saying why. meshlet judges
   * instead, in verifyClient, with a coded reason; attachServer makes that judgement
   * mandatory (a socket that fails it is destroyed before any other listener can use it).
   */
  serverOptions(extra: { ALPNProtocols?: string[] } = {}): TlsOptions {
    this.#assertOpen();
    return {
      ...this.#options,
      requestCert: true,
      rejectUnauthorized: false,
      noDelay: true,
      ...(extra.ALPNProtocols ? { ALPNProtocols: extra.ALPNProtocols } : {}),
    };
  }

  /**
   * Binds a tls.Server (created with serverOptions) to this MeshTls:
   *  - every rotation installs the new SVID/bundles with server.setSecureContext;
   *  - the client's chain is read before Node's own handler hides the intermediates
   *    (nodejs/node#65579). The 'keylog' event is the one documented server event that
   *    hands over the TLSSocket during the handshake; the key material it carries is not
   *    looked at or kept;
   *  - a fail-closed gate runs verifyClient first on every 'secureConnection' and destroys
   *    a socket that fails, so forgetting to call verifyClient cannot let a peer in.
   * Returns a function that undoes all three.
   */
  attachServer(server: Server): () => void {
    this.#assertOpen();
    const existing = this.#servers.get(server);
    if (existing) return existing;
    const hooked = new WeakSet<TLSSocket>();
    const onKeylog = (_line: Buffer, socket: TLSSocket): void => {
      if (hooked.has(socket)) return;
      hooked.add(socket);
      captureChainBeforeNode(socket);
    };
    const gate = (socket: TLSSocket): void => {
      try {
        this.verifyClient(socket);
      } catch {
        // No error argument: an 'error' event nobody listens to would crash the process.
        // The caller's own verifyClient call returns the same coded error.
        socket.destroy();
      }
    };
    server.on('keylog', onKeylog);
    server.prependListener('secureConnection', gate);
    const detach = (): void => {
      server.off('keylog', onKeylog);
      server.off('secureConnection', gate);
      this.#servers.delete(server);
    };
    this.#servers.set(server, detach);
    return detach;
  }

  /**
   * Server side of a connection meshlet accepted itself (a plain net.Server, e.g. a
   * PERMISSIVE port after detectTls said 'tls'): wraps the raw socket in a TLSSocket with
   * the current context. Listen for 'secure' and call verifyClient; handshake failures
   * arrive as 'error' on the returned socket.
   */
  acceptSocket(raw: Socket, extra: { ALPNProtocols?: string[] } = {}): TLSSocket {
    this.#assertOpen();
    raw.setNoDelay(true);
    const socket = new TLSSocket(raw, {
      isServer: true,
      secureContext: this.#context,
      requestCert: true,
      rejectUnauthorized: false,
      ...(extra.ALPNProtocols ? { ALPNProtocols: extra.ALPNProtocols } : {}),
    });
    captureChainBeforeNode(socket);
    return socket;
  }

  /**
   * After 'secureConnection' (or 'secure'): the client's verified identity. Its SVID must
   * verify against the bundle of its own trust domain (X.509-SVID §5). Any trust domain we
   * hold a bundle for is authenticated; what it may do is the policy's business.
   * On a resumed session the client presented nothing: its SVID is the leaf the session kept
   * (what getPeerCertificate shows), linked again to its intermediates (KnownIntermediates)
   * and verified the same way, against the CURRENT bundles and clock.
   * Throws TlsPeerError: TLS_PEER_NO_CERTIFICATE or the SvidVerifyError code.
   */
  verifyClient(socket: TLSSocket): VerifiedPeer {
    return this.#verifyPeer(socket, 'client');
  }

  /**
   * On a socket from connect()/connectOptions, after 'secureConnect': the server's verified
   * identity (already checked against the expectation during the handshake, or for a resumed
   * session by connect() before 'secureConnect'; this recalls it from the verdict cache, for
   * logs and metric labels). Prefer it to
   * socket.getPeerX509Certificate(): on Node 24 a client socket answers that only once
   * (later calls, and getPeerCertificate, come back empty; same defect as nodejs/node#65579).
   */
  verifyServer(socket: TLSSocket): VerifiedPeer {
    return this.#verifyPeer(socket, 'server');
  }

  #verifyPeer(socket: TLSSocket, role: 'client' | 'server'): VerifiedPeer {
    const known = this.#verdicts.get(socket);
    if (known !== undefined) {
      if (known instanceof TlsPeerError) throw known;
      return known;
    }
    let verdict: VerifiedPeer | TlsPeerError;
    let chain = peerChainOf(socket);
    if (chain === undefined) {
      verdict = new TlsPeerError('TLS_PEER_NO_CERTIFICATE', `the ${role} presented no certificate; mesh connections require an X.509-SVID`);
    } else {
      // A resumed session kept the caller's leaf only (a client socket resumed by connect()
      // has its verdict already; one resumed by hand shows no certificate and is refused).
      const resumed = role === 'client' && socket.isSessionReused();
      if (resumed) chain = this.#intermediates.complete(chain, MAX_CHAIN_LENGTH);
      try {
        verdict = verifyPeerChain(chain, this.#snapshot.bundles);
        if (this.#revoked !== undefined) this.#refuseRevoked(verdict, role);
        if (this.#resumption && role === 'client' && !resumed && chain.length > 1) this.#intermediates.learn(chain);
      } catch (err) {
        verdict = err as TlsPeerError;
      }
    }
    this.#verdicts.set(socket, verdict);
    if (verdict instanceof TlsPeerError) throw verdict;
    if (this.#trackPeers) this.#rememberOpen(socket, verdict.spiffeId.id, role === 'client' ? 'inbound' : 'outbound');
    return verdict;
  }

  /**
   * Options for tls.connect toward a peer sidecar. OpenSSL verifies the server's chain
   * against the union of bundles during the handshake; then checkServerIdentity (which
   * Node calls before 'secureConnect') verifies it per the SPIFFE rules and matches the
   * expected identity. There is no hostname check: SPIFFE identifies by URI SAN, not DNS.
   * A failure destroys the socket with a coded error ('error' event). Callers that connect
   * with these options themselves should setNoDelay(true) on the socket, as connect() does.
   */
  connectOptions(expected: ExpectedPeer, extra: { ALPNProtocols?: string[]; servername?: string } = {}): ConnectionOptions {
    this.#assertOpen();
    return this.#clientOptions(this.#expectation(expected).match, extra, undefined);
  }

  #clientOptions(match: (peer: VerifiedPeer) => void, extra: { ALPNProtocols?: string[]; servername?: string }, state: ClientConnectionState | undefined): ConnectionOptions {
    return {
      secureContext: this.#context,
      rejectUnauthorized: true,
      checkServerIdentity: (_host: string, cert: PeerCertificate) => {
        try {
          const chain = presentedChain(cert as DetailedPeerCertificate);
          const peer = verifyPeerChain(chain, this.#snapshot.bundles);
          match(peer);
          if (this.#revoked !== undefined) this.#refuseRevoked(peer, 'server');
          if (state !== undefined) state.verified = { chain, peer, at: Date.now() };
          return undefined;
        } catch (err) {
          return err as Error;
        }
      },
      ...(extra.ALPNProtocols ? { ALPNProtocols: extra.ALPNProtocols } : {}),
      ...(extra.servername ? { servername: extra.servername } : {}),
    };
  }

  /**
   * tls.connect toward a peer sidecar with connectOptions, Nagle off (small request/response
   * writes must not wait for an ACK). Errors, including a refused server identity, arrive as
   * 'error'. This is the connection that resumes sessions (docs/tls.md "Session resumption"):
   *  - it offers the latest session of this destination AND this expected identity, if one is
   *    cached and still within its lifetime, and keeps the tickets the server sends;
   *  - Node skips checkServerIdentity on a resumed session, so the identity check of a resumed
   *    connection runs here, before 'secureConnect' reaches any listener: the server
   *    certificate the session carries must be the leaf verified when the session was made,
   *    that chain must verify against the current bundles and clock, and it must match
   *    `expected`. A failure is the socket's 'error' (TlsPeerError), as in a full handshake,
   *    and the session is dropped.
   */
  connect(
    target: { host: string; port: number },
    expected: ExpectedPeer,
    extra: { ALPNProtocols?: string[]; servername?: string; allowHalfOpen?: boolean } = {},
  ): TLSSocket {
    this.#assertOpen();
    const expectation = this.#expectation(expected);
    const key = this.#resumption ? ClientSessionCache.key(target, expectation.key) : undefined;
    const offered = key === undefined ? undefined : this.#sessions.get(key);
    const state: ClientConnectionState = { key, offered, generation: this.#generation };
    const socket = tlsConnect({
      ...this.#clientOptions(expectation.match, extra, state),
      ...(offered ? { session: offered.session } : {}),
      ...(extra.allowHalfOpen ? { allowHalfOpen: true } : {}),
      host: target.host,
      port: target.port,
    });
    socket.setNoDelay(true);
    if (key !== undefined) this.#followSessions(socket, state, expectation.match);
    if (this.#trackPeers) {
      // After the identity checks (full: checkServerIdentity; resumed: the gate above), which set state.verified.
      socket.once('secureConnect', () => {
        if (state.verified !== undefined && !socket.destroyed) this.#rememberOpen(socket, state.verified.peer.spiffeId.id, 'outbound');
      });
    }
    return socket;
  }

  /** Throws TLS_PEER_REVOKED when the revocation list names `peer` (a client: a caller; a server: a destination). */
  #refuseRevoked(peer: VerifiedPeer, role: 'client' | 'server'): void {
    const id = peer.spiffeId.id;
    if (this.#revoked!.has(id)) {
      throw new TlsPeerError('TLS_PEER_REVOKED', `the ${role} ${id} is revoked (revocation list, docs/revocation.md)`);
    }
  }

  #rememberOpen(socket: TLSSocket, spiffeId: string, direction: 'inbound' | 'outbound'): void {
    if (socket.destroyed) return;
    let open = this.#openByPeer.get(spiffeId);
    if (open === undefined) this.#openByPeer.set(spiffeId, (open = new Map()));
    if (open.has(socket)) return;
    open.set(socket, direction);
    socket.once('close', () => {
      open.delete(socket);
      if (open.size === 0 && this.#openByPeer.get(spiffeId) === open) this.#openByPeer.delete(spiffeId);
    });
  }

  /**
   * After the revocation list changed: closes every open connection whose verified peer it now
   * names (the socket is destroyed: a caller sees its connection closed, and its next handshake
   * refused), and drops the cached client sessions of revoked servers so none is offered again.
   * Costs one lookup per distinct peer with an open connection. Returns what was closed, per ID.
   */
  closeRevokedPeers(): RevokedPeerClosures[] {
    const revoked = this.#revoked;
    if (revoked === undefined) return [];
    this.#sessions.dropPeers((id) => revoked.has(id));
    const closed: RevokedPeerClosures[] = [];
    for (const [spiffeId, open] of [...this.#openByPeer]) {
      if (!revoked.has(spiffeId)) continue;
      let inbound = 0;
      let outbound = 0;
      for (const [socket, direction] of [...open]) {
        if (direction === 'inbound') inbound++;
        else outbound++;
        // No error argument: nobody need listen for one; the proxies see a closed connection.
        socket.destroy();
      }
      this.#openByPeer.delete(spiffeId);
      closed.push({ spiffeId, inbound, outbound });
    }
    return closed;
  }

  /**
   * After new bundles were installed: closes every open connection whose verified peer's trust
   * domain has no bundle any more (new handshakes of that domain already fail: its CA is gone
   * from the context). One lookup per distinct peer with an open connection.
   */
  #closeUntrustedPeers(bundles: IdentitySnapshot['bundles']): void {
    const byDomain = new Map<string, { inbound: number; outbound: number }>();
    for (const [spiffeId, open] of [...this.#openByPeer]) {
      const slash = spiffeId.indexOf('/', SPIFFE_SCHEME.length);
      const trustDomain = spiffeId.slice(SPIFFE_SCHEME.length, slash === -1 ? undefined : slash);
      if (bundles.has(trustDomain)) continue;
      let counts = byDomain.get(trustDomain);
      if (counts === undefined) byDomain.set(trustDomain, (counts = { inbound: 0, outbound: 0 }));
      for (const [socket, direction] of [...open]) {
        counts[direction]++;
        socket.destroy();
      }
      this.#openByPeer.delete(spiffeId);
    }
    if (byDomain.size === 0) return;
    try {
      this.#onTrustLost?.([...byDomain].map(([trustDomain, c]) => ({ trustDomain, ...c })));
    } catch {
      // A listener's failure must not undo or interrupt the rotation: the sockets are closed.
    }
  }

  /** Gates 'secureConnect' of a resumed session on the identity check, and keeps the tickets that arrive. */
  #followSessions(socket: TLSSocket, state: ClientConnectionState, match: (peer: VerifiedPeer) => void): void {
    // Node emits 'secureConnect' right after its own checks, with no hook for a resumed session
    // (checkServerIdentity is skipped); a listener of ours could not stop the others from running.
    // So the check sits in front of that one event, once.
    const emit = socket.emit;
    socket.emit = ((event: string | symbol, ...args: unknown[]): boolean => {
      if (event === 'secureConnect') {
        socket.emit = emit;
        if (socket.isSessionReused()) {
          const verdict = this.#checkResumed(socket, state, match);
          this.#verdicts.set(socket, verdict);
          if (verdict instanceof TlsPeerError) {
            this.#sessions.delete(state.key!);
            socket.destroy(verdict);
            return false;
          }
        }
      }
      return Reflect.apply(emit, socket, [event, ...args]) as boolean;
    }) as typeof socket.emit;
    socket.on('session', (session: Buffer) => this.#keepSession(socket, state, session));
  }

  #checkResumed(socket: TLSSocket, state: ClientConnectionState, match: (peer: VerifiedPeer) => void): VerifiedPeer | TlsPeerError {
    const entry = state.offered;
    if (entry === undefined) return new TlsPeerError('TLS_PEER_NO_CERTIFICATE', 'the server resumed a session this connection did not offer');
    const leaf = sessionPeerCertificate(socket.getSession());
    if (leaf === undefined) return new TlsPeerError('TLS_PEER_NO_CERTIFICATE', 'the resumed session carries no server certificate');
    if (!leaf.equals(entry.chain[0]!)) {
      return new TlsPeerError('TLS_PEER_SESSION_MISMATCH', 'the server certificate of the resumed session is not the one verified when the session was made');
    }
    try {
      const peer = verifyPeerChain(entry.chain, this.#snapshot.bundles);
      match(peer);
      if (this.#revoked !== undefined) this.#refuseRevoked(peer, 'server');
      state.verified = { chain: entry.chain, peer, at: entry.establishedAt };
      return peer;
    } catch (err) {
      return err instanceof TlsPeerError ? err : new TlsPeerError('TLS_PEER_UNVERIFIED', `resumed session refused: ${(err as Error).message}`, { cause: err });
    }
  }

  /** A ticket from a server whose identity this connection verified: the session to offer next time. */
  #keepSession(socket: TLSSocket, state: ClientConnectionState, session: Buffer): void {
    const verified = state.verified;
    if (verified === undefined || state.key === undefined || state.generation !== this.#generation || socket.destroyed || this.#closed) return;
    // Only a session that carries the very certificate we verified is ever offered.
    const leaf = sessionPeerCertificate(session);
    if (leaf === undefined || !leaf.equals(verified.chain[0]!)) return;
    const expiresAt = Math.min(verified.at + SESSION_LIFETIME_CAP_MS, verified.peer.notAfter.getTime(), this.#snapshot.svid.notAfter.getTime());
    this.#sessions.set(state.key, { session, chain: verified.chain, peer: verified.peer, establishedAt: verified.at, expiresAt });
  }

  /** The SecureContext of the current SVID and bundles (one object per rotation). */
  clientContext(): SecureContext {
    return this.#context;
  }

  /** Called after every rotation, once the new contexts are in place. Returns unsubscribe. */
  onRotate(listener: RotateListener): () => void {
    this.#rotateListeners.add(listener);
    return () => this.#rotateListeners.delete(listener);
  }

  /** Stops following the source and detaches every server. The source stays the caller's. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    for (const detach of [...this.#servers.values()]) detach();
    this.#rotateListeners.clear();
    clearTimeout(this.#ticketKeyTimer);
    this.#sessions.clear();
  }

  /** The check of an expected peer, and its canonical form (the session cache's key part). */
  #expectation(expected: ExpectedPeer): { match: (peer: VerifiedPeer) => void; key: string } {
    if (expected.spiffeId !== undefined) {
      let want: string;
      try {
        want = parseSpiffeId(expected.spiffeId).id;
      } catch (err) {
        throw new TlsSetupError('TLS_BAD_EXPECTED_PEER', `expected peer: ${(err as Error).message}`, { cause: err });
      }
      const match = (peer: VerifiedPeer): void => {
        if (peer.spiffeId.id !== want) {
          throw new TlsPeerError('TLS_PEER_WRONG_IDENTITY', `the server is ${peer.spiffeId.id}, expected ${want}`);
        }
      };
      return { match, key: `id ${want}` };
    }
    const domains = expected.trustDomains ?? [this.#snapshot.svid.spiffeId.trustDomain];
    if (domains.length === 0) throw new TlsSetupError('TLS_BAD_EXPECTED_PEER', 'expected peer: trustDomains is empty, so no server could ever match');
    for (const td of domains) {
      try {
        validateTrustDomain(td);
      } catch (err) {
        throw new TlsSetupError('TLS_BAD_EXPECTED_PEER', `expected peer: ${(err as Error).message}`, { cause: err });
      }
    }
    const match = (peer: VerifiedPeer): void => {
      if (!domains.includes(peer.spiffeId.trustDomain)) {
        throw new TlsPeerError('TLS_PEER_UNTRUSTED_DOMAIN', `the server is ${peer.spiffeId.id}, outside the expected trust domain${domains.length > 1 ? 's' : ''} ${domains.join(', ')}`);
      }
    };
    return { match, key: `trust domains ${[...domains].sort().join(',')}` };
  }

  #install(snapshot: IdentitySnapshot): void {
    // Build everything first: if the new material does not load, the old stays in place.
    const options = meshContextOptions(snapshot, this.#ticketSettings(snapshot), this.#keyExchange);
    const context = createSecureContext(options);
    this.#snapshot = snapshot;
    this.#options = options;
    this.#context = context;
    // New SVID or bundles: sessions made under the old ones are neither offered (the cache is
    // emptied; a connection still in its handshake does not add to it) nor resumed by our
    // servers (new ticket keys and a new session ID context).
    this.#generation++;
    this.#sessions.clear();
    this.#scheduleTicketKeyRotation();
  }

  /** Fresh ticket keys; sessions live at most the cap, and not past our own SVID. */
  #ticketSettings(snapshot: IdentitySnapshot): TicketSettings {
    if (!this.#resumption) return { resumption: 'off' };
    const lifetimeMs = Math.min(SESSION_LIFETIME_CAP_MS, snapshot.svid.notAfter.getTime() - Date.now());
    return { resumption: 'on', ticketKeys: randomBytes(48), sessionTimeoutSeconds: Math.max(1, Math.floor(lifetimeMs / 1000)) };
  }

  /**
   * Ticket keys are replaced every SESSION_LIFETIME_CAP_MS, and when our SVID expires if that
   * comes first: a ticket never outlives the key that sealed it (Node's servers accept tickets
   * of their current key only), so no session resumes past the cap or past our SVID.
   */
  #scheduleTicketKeyRotation(): void {
    clearTimeout(this.#ticketKeyTimer);
    this.#ticketKeyTimer = undefined;
    if (!this.#resumption || this.#closed) return;
    const untilExpiry = this.#snapshot.svid.notAfter.getTime() - Date.now();
    const delay = Math.max(1000, untilExpiry > 0 ? Math.min(SESSION_LIFETIME_CAP_MS, untilExpiry) : SESSION_LIFETIME_CAP_MS);
    this.#ticketKeyTimer = setTimeout(() => this.#rotateTicketKeys(), delay);
    this.#ticketKeyTimer.unref();
  }

  #rotateTicketKeys(): void {
    if (this.#closed || !this.#resumption) return;
    const ticketKeys = randomBytes(48);
    this.#options = { ...this.#options, ticketKeys };
    for (const server of this.#servers.keys()) server.setTicketKeys(ticketKeys);
    (this.#context.context as { setTicketKeys(keys: Buffer): void }).setTicketKeys(ticketKeys);
    this.#scheduleTicketKeyRotation();
  }

  #rotate(snapshot: IdentitySnapshot): void {
    if (this.#closed) return;
    // A throw here reaches the source's onError listeners; the previous contexts stay.
    this.#install(snapshot);
    for (const server of this.#servers.keys()) server.setSecureContext(this.#options);
    if (this.#closeOnTrustLoss) this.#closeUntrustedPeers(snapshot.bundles);
    let first: unknown;
    for (const listener of this.#rotateListeners) {
      try {
        listener(snapshot);
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }

  #assertOpen(): void {
    if (this.#closed) throw new TlsSetupError('TLS_CLOSED', 'this MeshTls was closed');
  }
}
