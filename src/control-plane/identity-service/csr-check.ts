import { x509 } from '../../data-plane/identity/x509-library.ts';
import { createPublicKey, webcrypto } from 'node:crypto';
import { CertifyError } from './errors.ts';

/**
 * The checks a CSR must pass before the CA signs its key. The CSR carries ONLY the key;
 * the identity comes from the token. So the CSR may ask for nothing, or for exactly the
 * SPIFFE ID the token proves, and nothing else:
 * - it parses as PKCS#10 DER (bounded: the caller caps its size first);
 * - its key is ECDSA P-256, the one key type of meshlet's mTLS profile;
 * - its self-signature verifies with its own key (proof that the caller holds the key);
 * - SANs: none, or exactly one URI SAN equal to the derived ID. No DNS, IP, email or
 *   other names — a sidecar SVID must not be usable as a server certificate for a hostname;
 * - subject: empty, or only CN = the derived ID (some CSR tools insist on a CN);
 * - no basicConstraints asking for CA:true.
 * Any other requested extension is ignored: the CA builds the certificate from its own
 * template, never copying from the CSR.
 */
export interface CheckedCsr {
  /** The CSR's public key, ready for signSvid. */
  readonly publicKey: webcrypto.CryptoKey;
}

const OID_SUBJECT_ALT_NAME = '2.5.29.17';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';

/** Parses and checks the key and self-signature; names are checked by checkCsrNames once the ID is known. */
export async function parseAndVerifyCsr(der: Uint8Array): Promise<{ csr: x509.Pkcs10CertificateRequest; checked: CheckedCsr }> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(Buffer.from(der));
  } catch (err) {
    throw new CertifyError('IDENTITY_CSR_MALFORMED', `the CSR is not a DER PKCS#10 request (${(err as Error).message})`, { cause: err });
  }
  let spki: Buffer;
  try {
    spki = Buffer.from(csr.publicKey.rawData);
    const key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      const what = key.asymmetricKeyType === 'ec' ? `EC ${key.asymmetricKeyDetails?.namedCurve}` : String(key.asymmetricKeyType);
      throw new CertifyError('IDENTITY_CSR_KEY_NOT_P256', `the CSR's key is ${what}; only ECDSA P-256 keys are accepted`);
    }
  } catch (err) {
    if (err instanceof CertifyError) throw err;
    throw new CertifyError('IDENTITY_CSR_MALFORMED', `the CSR's public key cannot be read (${(err as Error).message})`, { cause: err });
  }
  let ok: boolean;
  try {
    ok = await csr.verify(globalThis.crypto);
  } catch (err) {
    throw new CertifyError('IDENTITY_CSR_BAD_SIGNATURE', `the CSR's signature cannot be verified (${(err as Error).message})`, { cause: err });
  }
  if (!ok) throw new CertifyError('IDENTITY_CSR_BAD_SIGNATURE', "the CSR's signature does not verify with the CSR's own key");
  const publicKey = await webcrypto.subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify']);
  return { csr, checked: { publicKey } };
}

/** Refuses a CSR that asks for any name other than `spiffeId` (see the module comment). */
export function checkCsrNames(csr: x509.Pkcs10CertificateRequest, spiffeId: string): void {
  for (const ext of csr.extensions) {
    if (ext.type === OID_SUBJECT_ALT_NAME) {
      const names = new x509.SubjectAlternativeNameExtension(ext.rawData).names.items;
      for (const name of names) {
        if (name.type !== 'url') {
          throw new CertifyError('IDENTITY_CSR_FORBIDDEN_SAN', `the CSR asks for a ${name.type.toUpperCase()} SAN (${JSON.stringify(name.value)}); only the SPIFFE ID ${spiffeId} may be requested`);
        }
        if (name.value !== spiffeId) {
          throw new CertifyError('IDENTITY_CSR_FORBIDDEN_SAN', `the CSR asks for the URI SAN ${JSON.stringify(name.value)} but the token proves ${spiffeId}`);
        }
      }
      if (names.length > 1) throw new CertifyError('IDENTITY_CSR_FORBIDDEN_SAN', `the CSR asks for ${names.length} URI SANs; an X.509-SVID has exactly one`);
    } else if (ext.type === OID_BASIC_CONSTRAINTS) {
      if (new x509.BasicConstraintsExtension(ext.rawData).ca) throw new CertifyError('IDENTITY_CSR_REQUESTS_CA', 'the CSR asks for a CA certificate (basicConstraints CA:true)');
    }
  }
  const subject = csr.subjectName.toJSON();
  if (subject.length === 0) return;
  const onlyCn = subject.length === 1 && Object.keys(subject[0]!).length === 1 && subject[0]!['CN']?.length === 1 && subject[0]!['CN'][0] === spiffeId;
  if (!onlyCn) {
    throw new CertifyError('IDENTITY_CSR_FORBIDDEN_SUBJECT', `the CSR asks for the subject ${JSON.stringify(csr.subject)}; only an empty subject or CN=${spiffeId} is accepted`);
  }
}
