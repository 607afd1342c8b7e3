// The throwaway control plane's PKI, made fresh for every run (nothing is committed): one CA
// for serving and client certificates, the API server's serving certificate, client
// certificates for the admin user and kube-controller-manager, and the ServiceAccount token
// signing key pair. Also serving certificates for webhooks the tests run on the host.
import { generateKeyPairSync, webcrypto } from 'node:crypto';
import { x509 } from '../../src/data-plane/identity/x509-library.ts';

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const HOUR = 3_600_000;

export interface Issued {
  cert: string;
  key: string;
}

export interface ClusterCa extends Issued {
  issue(opts: { cn: string; org?: string; dns?: string[]; ips?: string[]; usage: 'server' | 'client' }): Promise<Issued>;
}

async function pkcs8Pem(key: webcrypto.CryptoKey): Promise<string> {
  const b64 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key)).toString('base64');
  return `-----BEGIN PRIVATE KEY-----\n${b64.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

let serial = 1;
const nextSerial = () => (++serial).toString(16).padStart(2, '0');

/** A CA valid for a day; it issues serving (SANs) and client (CN = user, O = group) certificates. */
export async function createClusterCa(name: string): Promise<ClusterCa> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${name}`,
    notBefore: new Date(Date.now() - HOUR),
    notAfter: new Date(Date.now() + 24 * HOUR),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    cert: caCert.toString('pem'),
    key: await pkcs8Pem(keys.privateKey),
    async issue({ cn, org, dns = [], ips = [], usage }) {
      const leaf = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
      const sans = [...dns.map((value) => ({ type: 'dns' as const, value })), ...ips.map((value) => ({ type: 'ip' as const, value }))];
      // The subject is what Kubernetes authenticates a client certificate as: CN user, O groups.
      const subject = [`CN=${cn}`, ...(org ? [`O=${org}`] : [])].join(', ');
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: nextSerial(),
        subject,
        issuer: caCert.subject,
        notBefore: new Date(Date.now() - HOUR),
        notAfter: new Date(Date.now() + 23 * HOUR),
        publicKey: leaf.publicKey,
        signingKey: keys.privateKey,
        signingAlgorithm: ALG,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
          ...(sans.length > 0 ? [new x509.SubjectAlternativeNameExtension(sans)] : []),
          await x509.AuthorityKeyIdentifierExtension.create(caCert),
        ],
      });
      return { cert: cert.toString('pem'), key: await pkcs8Pem(leaf.privateKey) };
    },
  };
}

/** The ServiceAccount token signing pair, RSA 2048 as kubeadm makes it (tokens are RS256). */
export function serviceAccountKeyPair(): { privateKey: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}
