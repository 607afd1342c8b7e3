import { connect as netConnect, type Socket } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { createIntermediateCa, createRootCa, issueSvid, type CertificateAuthority } from '../../../src/control-plane/identity-service/ca.ts';
import type { IdentitySnapshot } from '../../../src/data-plane/identity/svid.ts';
import { StaticSvidSource } from '../../../src/data-plane/identity/sources/static.ts';
import { MeshTls, type ExpectedPeer } from '../../../src/data-plane/tls/mesh-tls.ts';

/**
 * Real trust domains, real SVIDs, real TLS servers on 127.0.0.1:0 for the TLS layer's tests.
 * Everything made here is registered in a Fixture and torn down by `fixture.close()`.
 */
export interface TrustDomain {
  readonly name: string;
  readonly root: CertificateAuthority;
  /** What signs the SVIDs: an intermediate (root kept offline, as in production) or the root. */
  readonly issuer: CertificateAuthority;
}

export async function trustDomain(name: string, opts: { intermediate?: boolean } = {}): Promise<TrustDomain> {
  const root = await createRootCa({ trustDomain: name });
  const issuer = opts.intermediate === false ? root : await createIntermediateCa(root);
  return { name, root, issuer };
}

/** A snapshot for `path` in `td`, trusting td's bundle plus the bundles of `alsoTrust`. */
export async function identity(
  td: TrustDomain,
  path: string,
  opts: {
    alsoTrust?: readonly TrustDomain[];
    ttlMs?: number;
    now?: Date;
    /** Forge: an SVID for this trust domain's name, signed by td's CA (which ca.ts never does on its own). */
    claimTrustDomain?: string;
  } = {},
): Promise<IdentitySnapshot> {
  const claimed = opts.claimTrustDomain ?? td.name;
  const signer = claimed === td.name ? td.issuer : { ...td.issuer, trustDomain: claimed };
  const svid = await issueSvid(signer, { spiffeId: `spiffe://${claimed}${path}`, ttlMs: opts.ttlMs, now: opts.now });
  const bundles = new Map<string, string>([[td.name, td.root.bundlePem]]);
  for (const other of opts.alsoTrust ?? []) bundles.set(other.name, other.root.bundlePem);
  return { svid, bundles };
}

export interface MeshServer {
  readonly server: Server;
  readonly port: number;
  /** Every TLS socket the server accepted, in order. */
  readonly accepted: TLSSocket[];
  /** What verifyClient said for each accepted socket (a VerifiedPeer's ID or the error code). */
  readonly verdicts: string[];
  /** Client handshake errors the server reported, with the reason meshlet would label them. */
  readonly clientErrors: Error[];
}

export class Fixture {
  readonly #cleanups: (() => void | Promise<void>)[] = [];

  defer(cleanup: () => void | Promise<void>): void {
    this.#cleanups.push(cleanup);
  }

  async meshTls(snapshot: IdentitySnapshot): Promise<{ tls: MeshTls; source: StaticSvidSource }> {
    const source = new StaticSvidSource(snapshot);
    await source.start();
    const tls = new MeshTls(source);
    this.defer(async () => {
      tls.close();
      await source.close();
    });
    return { tls, source };
  }

  /** A mesh TLS server: verifies each client, then echoes whatever it receives. */
  async server(mesh: MeshTls, extra: { ALPNProtocols?: string[] } = {}): Promise<MeshServer> {
    const accepted: TLSSocket[] = [];
    const verdicts: string[] = [];
    const clientErrors: Error[] = [];
    const server = createServer(mesh.serverOptions(extra), (socket) => {
      accepted.push(socket);
      socket.on('error', () => {});
      try {
        verdicts.push(mesh.verifyClient(socket).spiffeId.id);
      } catch (err) {
        verdicts.push((err as { code: string }).code);
        return;
      }
      socket.pipe(socket);
    });
    server.on('tlsClientError', (err) => clientErrors.push(err));
    mesh.attachServer(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.defer(() => closeServer(server, accepted));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('server has no TCP address');
    return { server, port: address.port, accepted, verdicts, clientErrors };
  }

  /** Connects with mesh TLS; resolves once the handshake is done (server identity verified). */
  connect(mesh: MeshTls, port: number, expected: ExpectedPeer = {}): Promise<TLSSocket> {
    const socket = mesh.connect({ host: '127.0.0.1', port }, expected);
    this.defer(() => void socket.destroy());
    return new Promise((resolve, reject) => {
      socket.once('secureConnect', () => {
        socket.off('error', reject);
        socket.on('error', () => {});
        resolve(socket);
      });
      socket.once('error', reject);
    });
  }

  plainConnect(port: number): Promise<Socket> {
    const socket = netConnect({ host: '127.0.0.1', port });
    this.defer(() => void socket.destroy());
    return new Promise((resolve, reject) => {
      socket.once('connect', () => resolve(socket));
      socket.once('error', reject);
    });
  }

  async close(): Promise<void> {
    for (const cleanup of this.#cleanups.splice(0).reverse()) await cleanup();
  }
}

function closeServer(server: Server, sockets: readonly TLSSocket[]): Promise<void> {
  for (const socket of sockets) socket.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Writes `text` and waits until the same bytes come back (the test servers echo). */
export function roundTrip(socket: TLSSocket | Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (chunk: Buffer): void => {
      got += chunk.toString('utf8');
      if (got.length >= text.length) {
        cleanup();
        resolve(got);
      }
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error(`connection closed after ${JSON.stringify(got)} while waiting for ${JSON.stringify(text)}`));
    };
    const cleanup = (): void => {
      socket.off('data', onData);
      socket.off('close', onClose);
    };
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(text);
  });
}

/** Resolves with the socket's error, or with 'closed' when it closes without one. */
export function outcome(socket: TLSSocket | Socket): Promise<Error | 'closed'> {
  return new Promise((resolve) => {
    socket.once('error', (err) => resolve(err));
    socket.once('close', () => resolve('closed'));
  });
}

/** Polls `check` until it is true; no fixed sleeps (a loaded machine only makes it slower). */
export async function eventually(check: () => boolean, what: string, deadlineMs = 20_000): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
