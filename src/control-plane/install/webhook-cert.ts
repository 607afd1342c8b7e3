import { randomBytes } from 'node:crypto';
import { derToPem } from '../../data-plane/identity/pem.ts';
import { x509 } from '../../data-plane/identity/x509-library.ts';
import { CLOCK_SKEW_BACKDATE_MS } from '../identity-service/ca.ts';

/**
 * The injector's serving certificate for `meshlet install`: a fresh self-signed CA used for
 * this one certificate only (its key is thrown away once it has signed), and an ECDSA P-256
 * serving certificate with the Service's DNS names as SANs. Not the mesh CA: the API server
 * trusts whatever the caBundle signs for that name, and the mesh CA signs every workload's SVID.
 */
export interface WebhookServingCert {
  /** The CA's certificate: the webhooks' caBundle (and ca.crt of the Secret). */
  caPem: string;
  certPem: string;
  /** PKCS#8 PEM. */
  keyPem: string;
  notAfter: Date;
}

/** One year, the default of `meshlet install --injector-cert-ttl`. */
export const DEFAULT_INJECTOR_CERT_TTL_MS = 365 * 24 * 3600 * 1000;

const ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) || 0x01;
  return b.toString('hex');
}

async function pkcs8(key: CryptoKey): Promise<string> {
  return derToPem(await globalThis.crypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/** The DNS names the API server may use for a webhook Service (it uses `<svc>.<ns>.svc`). */
export function serviceDnsNames(service: string, namespace: string): string[] {
  return [`${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`, `${service}.${namespace}`, service];
}

export async function createWebhookServingCert(opts: { dnsNames: string[]; ttlMs?: number; now?: Date }): Promise<WebhookServingCert> {
  const now = opts.now ?? new Date();
  const notBefore = new Date(now.getTime() - CLOCK_SKEW_BACKDATE_MS);
  const notAfter = new Date(now.getTime() + (opts.ttlMs ?? DEFAULT_INJECTOR_CERT_TTL_MS));
  const caKeys = (await globalThis.crypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const caSki = await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=meshlet-injector-webhook-ca ${randomBytes(4).toString('hex')}, O=meshlet`,
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      caSki,
    ],
  });
  const leafKeys = (await globalThis.crypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${opts.dnsNames[0]}, O=meshlet`,
    issuer: ca.subject,
    notBefore,
    notAfter,
    publicKey: leafKeys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(opts.dnsNames.map((value) => ({ type: 'dns' as const, value })), false),
      await x509.SubjectKeyIdentifierExtension.create(leafKeys.publicKey),
      new x509.AuthorityKeyIdentifierExtension(caSki.keyId),
    ],
  });
  return { caPem: ca.toString('pem') + '\n', certPem: leaf.toString('pem') + '\n', keyPem: await pkcs8(leafKeys.privateKey), notAfter: leaf.notAfter };
}

type CryptoKey = import('node:crypto').webcrypto.CryptoKey;
type CryptoKeyPair = import('node:crypto').webcrypto.CryptoKeyPair;
