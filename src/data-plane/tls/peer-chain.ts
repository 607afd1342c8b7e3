import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';

/**
 * The certificate chain a peer presented, leaf first, as DER, from Node's detailed peer
 * certificate. Node links each certificate to its issuer (`issuerCertificate`) and may end
 * the walk with a root it completed from OUR trust store; a self-issued certificate is only
 * ever a trust anchor, and SPIFFE takes anchors from the bundle of the peer's trust domain,
 * never from the peer, so self-issued certificates are left out.
 */
export function presentedChain(leaf: DetailedPeerCertificate): Buffer[] {
  const chain: Buffer[] = [leaf.raw];
  let cert = leaf;
  // A chain longer than this is not an SVID chain; stop rather than walk a hostile one.
  for (let depth = 0; depth < MAX_CHAIN; depth++) {
    const issuer = cert.issuerCertificate as DetailedPeerCertificate | undefined;
    if (issuer === undefined || issuer === cert || issuer.raw === undefined || issuer.raw.equals(cert.raw)) break;
    if (isSelfIssued(issuer)) break;
    chain.push(issuer.raw);
    cert = issuer;
  }
  return chain;
}

const MAX_CHAIN = 8;

function isSelfIssued(cert: DetailedPeerCertificate): boolean {
  return cert.issuerCertificate === cert || sameName(cert.subject, cert.issuer);
}

function sameName(a: object | undefined, b: object | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (String((a as Record<string, unknown>)[k]) !== String((b as Record<string, unknown>)[k])) return false;
  return true;
}

/**
 * Node 24 loses the server side's view of the client's intermediates once its own
 * 'secure' handler has looked at the peer certificate (nodejs/node#65579): afterwards
 * `getPeerCertificate(true)` shows the leaf alone. We read the chain in a 'secure'
 * listener placed BEFORE Node's and keep it here until verification.
 */
const captured = new WeakMap<TLSSocket, Buffer[]>();

export function captureChainBeforeNode(socket: TLSSocket): void {
  socket.prependOnceListener('secure', () => {
    const peer = socket.getPeerCertificate(true);
    if (peer.raw !== undefined) captured.set(socket, presentedChain(peer));
  });
}

/** The client's chain on a server-side socket: the captured one, else what Node shows now. */
export function peerChainOf(socket: TLSSocket): Buffer[] | undefined {
  const early = captured.get(socket);
  if (early !== undefined) return early;
  const peer = socket.getPeerCertificate(true);
  return peer.raw === undefined ? undefined : presentedChain(peer);
}
