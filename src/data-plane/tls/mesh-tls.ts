import type { Socket } from 'node:net';
import { TLSSocket, connect as tlsConnect, createSecureContext, type ConnectionOptions, type DetailedPeerCertificate, type PeerCertificate, type SecureContext, type SecureContextOptions, type Server, type TlsOptions } from 'node:tls';
import { parseSpiffeId, validateTrustDomain } from '../../common/identity/spiffe-id.ts';
import type { IdentitySnapshot, SvidSource } from '../identity/svid.ts';
import { TlsPeerError, TlsSetupError } from './errors.ts';
import { captureChainBeforeNode, peerChainOf, presentedChain } from './peer-chain.ts';
import { verifyPeerChain, type VerifiedPeer } from './peer-verifier.ts';
import { meshContextOptions } from './secure-context.ts';

export { TlsPeerError, TlsSetupError } from './errors.ts';
export { handshakeFailureReason, type HandshakeFailureReason } from './handshake-failure-reason.ts';
export type { VerifiedPeer } from './peer-verifier.ts';

/** Who the server at the other end must be. Empty: any workload of our own trust domain. */
export interface ExpectedPeer {
  /** Exactly this SPIFFE ID (the destination's identity, when known). */
  spiffeId?: string;
  /** Any workload of one of these trust domains (default: our own). Ignored when spiffeId is set. */
  trustDomains?: readonly string[];
}

type RotateListener = (snapshot: IdentitySnapshot) => void;

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
  #closed = false;

  constructor(source: SvidSource) {
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
   * Throws TlsPeerError: TLS_PEER_NO_CERTIFICATE or the SvidVerifyError code.
   */
  verifyClient(socket: TLSSocket): VerifiedPeer {
    return this.#verifyPeer(socket, 'client');
  }

  /**
   * On a socket from connect()/connectOptions, after 'secureConnect': the server's verified
   * identity (already checked against the expectation during the handshake; this recalls
   * it from the verdict cache, for logs and metric labels). Prefer it to
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
    const chain = peerChainOf(socket);
    if (chain === undefined) {
      verdict = new TlsPeerError('TLS_PEER_NO_CERTIFICATE', `the ${role} presented no certificate; mesh connections require an X.509-SVID`);
    } else {
      try {
        verdict = verifyPeerChain(chain, this.#snapshot.bundles);
      } catch (err) {
        verdict = err as TlsPeerError;
      }
    }
    this.#verdicts.set(socket, verdict);
    if (verdict instanceof TlsPeerError) throw verdict;
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
    const match = this.#expectation(expected);
    return {
      secureContext: this.#context,
      rejectUnauthorized: true,
      checkServerIdentity: (_host: string, cert: PeerCertificate) => {
        try {
          const peer = verifyPeerChain(presentedChain(cert as DetailedPeerCertificate), this.#snapshot.bundles);
          match(peer);
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
   * tls.connect with connectOptions, Nagle off (small request/response writes must not wait
   * for an ACK). Errors, including a refused server identity, arrive as 'error'.
   */
  connect(target: { host: string; port: number }, expected: ExpectedPeer, extra: { ALPNProtocols?: string[]; servername?: string } = {}): TLSSocket {
    const socket = tlsConnect({ ...this.connectOptions(expected, extra), host: target.host, port: target.port });
    socket.setNoDelay(true);
    return socket;
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
  }

  #expectation(expected: ExpectedPeer): (peer: VerifiedPeer) => void {
    if (expected.spiffeId !== undefined) {
      let want: string;
      try {
        want = parseSpiffeId(expected.spiffeId).id;
      } catch (err) {
        throw new TlsSetupError('TLS_BAD_EXPECTED_PEER', `expected peer: ${(err as Error).message}`, { cause: err });
      }
      return (peer) => {
        if (peer.spiffeId.id !== want) {
          throw new TlsPeerError('TLS_PEER_WRONG_IDENTITY', `the server is ${peer.spiffeId.id}, expected ${want}`);
        }
      };
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
    return (peer) => {
      if (!domains.includes(peer.spiffeId.trustDomain)) {
        throw new TlsPeerError('TLS_PEER_UNTRUSTED_DOMAIN', `the server is ${peer.spiffeId.id}, outside the expected trust domain${domains.length > 1 ? 's' : ''} ${domains.join(', ')}`);
      }
    };
  }

  #install(snapshot: IdentitySnapshot): void {
    // Build everything first: if the new material does not load, the old stays in place.
    const options = meshContextOptions(snapshot);
    const context = createSecureContext(options);
    this.#snapshot = snapshot;
    this.#options = options;
    this.#context = context;
  }

  #rotate(snapshot: IdentitySnapshot): void {
    if (this.#closed) return;
    // A throw here reaches the source's onError listeners; the previous contexts stay.
    this.#install(snapshot);
    for (const server of this.#servers.keys()) server.setSecureContext(this.#options);
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
