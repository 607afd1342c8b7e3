import { createPrivateKey, X509Certificate, webcrypto } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLOCK_SKEW_BACKDATE_MS,
  createIntermediateCa,
  createRootCa,
  DEFAULT_SVID_TTL_MS,
  issueSvid,
  readCa,
  signSvid,
  writeCa,
  type CertificateAuthority,
} from '../../../src/control-plane/identity-service/ca.ts';
import { parseCertificatesPem, parsePrivateKeyPem, assertKeyMatchesCertificate } from '../../../src/data-plane/identity/pem.ts';
import { verifyX509Svid } from '../../../src/data-plane/identity/svid-verify.ts';
import { readSvidExtensions } from '../../../src/data-plane/identity/x509-extensions.ts';
import { x509 } from '../../../src/data-plane/identity/x509-library.ts';
import { FIXTURES_DIR } from '../../fixtures/generate.ts';

const TD = 'ca-test.example';
const ID = `spiffe://${TD}/ns/shop/sa/orders`;
const HOUR = 3600_000;

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as { code?: string }).code ?? `no code: ${String(err)}`;
  }
  throw new Error('expected a rejection');
}

let root: CertificateAuthority;
let intermediate: CertificateAuthority;
let tmp: string;

beforeAll(async () => {
  root = await createRootCa({ trustDomain: TD });
  intermediate = await createIntermediateCa(root);
  tmp = await mkdtemp(join(tmpdir(), 'meshlet-ca-test-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('createRootCa / createIntermediateCa', () => {
  it('makes a self-signed root: CA:true critical, keyCertSign+cRLSign critical, spiffe://td URI SAN, pathLen 1', () => {
    const cert = new X509Certificate(root.certPem);
    const ext = readSvidExtensions(cert.raw);
    expect(cert.ca).toBe(true);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(ext.basicConstraints).toEqual({ ca: true, pathLen: 1 });
    expect(ext.criticalExtensions).toContain('2.5.29.19');
    expect(ext.keyUsage).toBe(32 | 64);
    expect(ext.keyUsageCritical).toBe(true);
    expect(ext.uriSans).toEqual([`spiffe://${TD}`]);
    expect(root.chainPem).toBe('');
    expect(root.bundlePem).toBe(root.certPem);
    expect(root.trustDomain).toBe(TD);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    assertKeyMatchesCertificate(parsePrivateKeyPem(root.keyPem), cert);
  });

  it('makes an intermediate signed by the root with pathLen 0, chain = itself, bundle = root', () => {
    const cert = new X509Certificate(intermediate.certPem);
    expect(cert.checkIssued(new X509Certificate(root.certPem))).toBe(true);
    expect(cert.verify(new X509Certificate(root.certPem).publicKey)).toBe(true);
    expect(readSvidExtensions(cert.raw).basicConstraints).toEqual({ ca: true, pathLen: 0 });
    expect(intermediate.chainPem).toBe(intermediate.certPem);
    expect(intermediate.bundlePem).toBe(root.bundlePem);
    expect(intermediate.trustDomain).toBe(TD);
  });

  it('refuses an intermediate below a pathLen 0 CA', async () => {
    expect(await codeOf(createIntermediateCa(intermediate))).toBe('CA_PATH_LEN_EXCEEDED');
  });

  it('never lets an intermediate outlive its parent', async () => {
    const shortRoot = await createRootCa({ trustDomain: TD, ttlMs: 48 * HOUR });
    const inter = await createIntermediateCa(shortRoot, { ttlMs: 365 * 24 * HOUR });
    expect(new X509Certificate(inter.certPem).validToDate.getTime()).toBe(new X509Certificate(shortRoot.certPem).validToDate.getTime());
  });

  it('refuses a bad trust domain and a bad TTL with coded errors', async () => {
    expect(await codeOf(createRootCa({ trustDomain: 'Bad.Domain' }))).toBe('SPIFFE_ID_BAD_TRUST_DOMAIN_CHAR');
    expect(await codeOf(createRootCa({ trustDomain: TD, ttlMs: 0 }))).toBe('CA_BAD_TTL');
    expect(await codeOf(createRootCa({ trustDomain: TD, ttlMs: Number.NaN }))).toBe('CA_BAD_TTL');
  });
});

describe('issueSvid / signSvid', () => {
  it('issues a spec-conformant leaf via the intermediate: chain leaf + intermediate, verifies against the root', async () => {
    const now = new Date();
    const svid = await issueSvid(intermediate, { spiffeId: ID, now });
    const certs = parseCertificatesPem(svid.certChainPem);
    expect(certs).toHaveLength(2);
    expect(certs[1]!.raw.equals(new X509Certificate(intermediate.certPem).raw)).toBe(true);
    const leaf = certs[0]!;
    const ext = readSvidExtensions(leaf.raw);
    expect(leaf.ca).toBe(false);
    expect(ext.basicConstraints).toEqual({ ca: false, pathLen: undefined });
    expect(ext.criticalExtensions).toEqual(expect.arrayContaining(['2.5.29.19', '2.5.29.15']));
    expect(ext.keyUsage).toBe(1);
    expect(ext.extKeyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(ext.uriSans).toEqual([ID]);
    expect(leaf.subject).toBe('O=meshlet');
    assertKeyMatchesCertificate(parsePrivateKeyPem(svid.privateKeyPem), leaf);
    expect(svid.privateKeyPem).toContain('-----BEGIN PRIVATE KEY-----');
    expect(svid.spiffeId.id).toBe(ID);
    expect(svid.bundlePem).toBe(root.bundlePem);
    // Backdated for clock skew; 24 h by default. UTCTime keeps whole seconds.
    const secs = (d: Date) => Math.floor(d.getTime() / 1000);
    expect(secs(svid.notBefore)).toBe(secs(new Date(now.getTime() - CLOCK_SKEW_BACKDATE_MS)));
    expect(secs(svid.notAfter)).toBe(secs(new Date(now.getTime() + DEFAULT_SVID_TTL_MS)));
    expect(svid.notAfter.getTime()).toBe(leaf.validToDate.getTime());
    const peer = verifyX509Svid(certs.map((c) => c.raw), new Map([[TD, root.bundlePem]]));
    expect(peer.spiffeId.id).toBe(ID);
  });

  it('uses a fresh random serial for every SVID', async () => {
    const serials = new Set<string>();
    for (let i = 0; i < 5; i++) serials.add(parseCertificatesPem((await issueSvid(root, { spiffeId: ID })).certChainPem)[0]!.serialNumber);
    expect(serials.size).toBe(5);
  });

  it('signs a public key the caller holds (the Certify path) and honours ttlMs', async () => {
    const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    const now = new Date();
    const signed = await signSvid(root, { spiffeId: ID, publicKey: keys.publicKey, ttlMs: HOUR, now });
    const [leaf] = parseCertificatesPem(signed.certChainPem);
    const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
    expect(leaf!.publicKey.export({ format: 'der', type: 'spki' }).equals(spki)).toBe(true);
    expect(Math.floor(signed.notAfter.getTime() / 1000)).toBe(Math.floor((now.getTime() + HOUR) / 1000));
    expect(signed.certChainPem.match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
  });

  it('clamps an SVID to the CA expiry and refuses to sign with an expired CA', async () => {
    const longAgo = new Date(Date.now() - 10 * HOUR);
    const shortCa = await createRootCa({ trustDomain: TD, ttlMs: 12 * HOUR, now: longAgo });
    const svid = await issueSvid(shortCa, { spiffeId: ID });
    expect(svid.notAfter.getTime()).toBe(new X509Certificate(shortCa.certPem).validToDate.getTime());
    const expiredCa = await createRootCa({ trustDomain: TD, ttlMs: HOUR, now: longAgo });
    expect(await codeOf(issueSvid(expiredCa, { spiffeId: ID }))).toBe('CA_EXPIRED');
  });

  it('refuses IDs outside the trust domain, the trust-domain ID itself, and invalid IDs', async () => {
    expect(await codeOf(issueSvid(root, { spiffeId: 'spiffe://other.example/ns/a/sa/b' }))).toBe('CA_SPIFFE_ID_WRONG_TRUST_DOMAIN');
    expect(await codeOf(issueSvid(root, { spiffeId: `spiffe://${TD}` }))).toBe('CA_SPIFFE_ID_NO_PATH');
    expect(await codeOf(issueSvid(root, { spiffeId: `spiffe://${TD}/a//b` }))).toBe('SPIFFE_ID_EMPTY_SEGMENT');
    expect(await codeOf(issueSvid(root, { spiffeId: ID, ttlMs: -1 }))).toBe('CA_BAD_TTL');
  });
});

describe('writeCa / readCa', () => {
  it('round-trips a root: ca.crt, ca.key (0600), bundle.crt; no chain.crt', async () => {
    const dir = join(tmp, 'root');
    await writeCa(dir, root);
    expect((await stat(join(dir, 'ca.key'))).mode & 0o777).toBe(0o600);
    await expect(stat(join(dir, 'chain.crt'))).rejects.toThrow();
    const back = await readCa(dir);
    expect(back).toEqual({ ...root });
    // The loaded CA signs just like the original.
    const svid = await issueSvid(back, { spiffeId: ID });
    expect(verifyX509Svid(parseCertificatesPem(svid.certChainPem).map((c) => c.raw), new Map([[TD, root.bundlePem]])).spiffeId.id).toBe(ID);
  });

  it('round-trips an intermediate with chain.crt and bundle.crt', async () => {
    const dir = join(tmp, 'intermediate');
    await writeCa(dir, intermediate);
    const back = await readCa(dir);
    expect(back).toEqual({ ...intermediate });
  });

  it('a root directory without bundle.crt still loads (the root is its own bundle)', async () => {
    const dir = join(tmp, 'root-no-bundle');
    await writeCa(dir, root);
    await rm(join(dir, 'bundle.crt'));
    expect((await readCa(dir)).bundlePem).toBe(root.certPem);
  });

  it('loads a CA made by other tools: RSA key in PKCS#1 PEM, no chain.crt or bundle.crt', async () => {
    const keys = await webcrypto.subtle.generateKey(
      { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
      true,
      ['sign', 'verify'],
    );
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      name: 'CN=external rsa root',
      keys,
      signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5' },
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'spiffe://rsa.example' }]),
      ],
    });
    const dir = join(tmp, 'external-rsa');
    await mkdir(dir);
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    const pkcs1Pem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs1' }) as string;
    expect(pkcs1Pem).toContain('BEGIN RSA PRIVATE KEY');
    await writeFile(join(dir, 'ca.crt'), cert.toString('pem'));
    await writeFile(join(dir, 'ca.key'), pkcs1Pem);
    const ca = await readCa(dir);
    expect(ca.trustDomain).toBe('rsa.example');
    const svid = await issueSvid(ca, { spiffeId: 'spiffe://rsa.example/w' });
    const chain = parseCertificatesPem(svid.certChainPem).map((c) => c.raw);
    expect(verifyX509Svid(chain, new Map([['rsa.example', ca.bundlePem]])).spiffeId.id).toBe('spiffe://rsa.example/w');
  });

  it('reports each broken CA directory with its own code', async () => {
    expect(await codeOf(readCa(join(tmp, 'does-not-exist')))).toBe('CA_FILE_MISSING');
    expect(await codeOf(readCa(join(FIXTURES_DIR, 'corrupt-key-ca')))).toBe('CA_KEY_CORRUPT');
    expect(await codeOf(readCa(join(FIXTURES_DIR, 'mismatched-key-ca')))).toBe('CA_KEY_MISMATCH');

    const noChain = join(tmp, 'no-chain');
    await writeCa(noChain, intermediate);
    await rm(join(noChain, 'chain.crt'));
    expect(await codeOf(readCa(noChain))).toBe('CA_FILE_MISSING');

    const corruptCert = join(tmp, 'corrupt-cert');
    await writeCa(corruptCert, root);
    await writeFile(join(corruptCert, 'ca.crt'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    expect(await codeOf(readCa(corruptCert))).toBe('CA_CERT_CORRUPT');

    const leafAsCa = join(tmp, 'leaf-as-ca');
    await cp(join(FIXTURES_DIR, 'root-ca'), leafAsCa, { recursive: true });
    await writeFile(join(leafAsCa, 'ca.crt'), await readFile(join(FIXTURES_DIR, 'good-leaf.pem')));
    await writeFile(join(leafAsCa, 'ca.key'), await readFile(join(FIXTURES_DIR, 'good-leaf.key')));
    expect(await codeOf(readCa(leafAsCa))).toBe('CA_NOT_A_CA');
  });
});

describe('SVIDs in a real mTLS handshake', () => {
  it("pass node's own OpenSSL chain validation both ways (TLS 1.3, leaf + intermediate, root as the only CA)", async () => {
    const serverSvid = await issueSvid(intermediate, { spiffeId: `spiffe://${TD}/ns/shop/sa/server` });
    const clientSvid = await issueSvid(intermediate, { spiffeId: `spiffe://${TD}/ns/shop/sa/client` });
    let serverSaw: string | undefined;
    const server = createServer(
      { cert: serverSvid.certChainPem, key: serverSvid.privateKeyPem, ca: root.bundlePem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' },
      (socket: TLSSocket) => {
        serverSaw = socket.getPeerCertificate().subjectaltname;
        socket.end('ok');
      },
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const reply = await new Promise<{ authorized: boolean; data: string; san: string | undefined }>((resolve, reject) => {
        const socket = connect({
          host: '127.0.0.1',
          port,
          cert: clientSvid.certChainPem,
          key: clientSvid.privateKeyPem,
          ca: root.bundlePem,
          minVersion: 'TLSv1.3',
          // SPIFFE authenticates by URI SAN, never by hostname (X.509-SVID §5).
          checkServerIdentity: () => undefined,
        });
        let data = '';
        socket.on('data', (d) => (data += d));
        socket.on('end', () => resolve({ authorized: socket.authorized, data, san: socket.getPeerCertificate().subjectaltname }));
        socket.on('error', reject);
      });
      expect(reply).toEqual({ authorized: true, data: 'ok', san: `URI:spiffe://${TD}/ns/shop/sa/server` });
      expect(serverSaw).toBe(`URI:spiffe://${TD}/ns/shop/sa/client`);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
