import { X509Certificate } from 'node:crypto';
import { createRootCa, issueSvid, type CertificateAuthority } from '../../../src/control-plane/identity-service/ca.ts';
import { FILES_SOURCE_DEFAULTS } from '../../../src/data-plane/identity/sources/files.ts';
import { kubeletWrite } from '../../support/kubelet-volume.ts';

/** What a test needs to recognise an SVID later (on the wire, in metrics). */
export interface IssuedSvid {
  spiffeId: string;
  /** Hex serial of the leaf, as node:crypto prints it. */
  serial: string;
  notAfter: Date;
  certChainPem: string;
  privateKeyPem: string;
  bundlePem: string;
}

/**
 * The mesh's CA in the e2e suite. No identity service runs there (it would need a
 * TokenReview API); instead each pod's SVID is written into a volume directory laid out as
 * the `files` identity source reads it (tls.crt, tls.key, ca.crt), with kubelet's atomic
 * `..data` swap — so a rotation is exactly what cert-manager's csi-driver-spiffe or a
 * Secret update looks like to the sidecar.
 */
export class SvidVolumes {
  readonly ca: CertificateAuthority;

  private constructor(ca: CertificateAuthority) {
    this.ca = ca;
  }

  static async create(trustDomain = 'cluster.local'): Promise<SvidVolumes> {
    return new SvidVolumes(await createRootCa({ trustDomain }));
  }

  /** Issues a fresh SVID for `spiffeId` and swaps it into `dir` (first write or rotation alike). */
  async write(dir: string, spiffeId: string, options: { ttlMs?: number } = {}): Promise<IssuedSvid> {
    const svid = await issueSvid(this.ca, { spiffeId, ...(options.ttlMs ? { ttlMs: options.ttlMs } : {}) });
    await kubeletWrite(dir, {
      [FILES_SOURCE_DEFAULTS.certFile]: svid.certChainPem,
      [FILES_SOURCE_DEFAULTS.keyFile]: svid.privateKeyPem,
      [FILES_SOURCE_DEFAULTS.bundleFile]: svid.bundlePem,
    });
    return {
      spiffeId,
      serial: new X509Certificate(svid.certChainPem).serialNumber,
      notAfter: svid.notAfter,
      certChainPem: svid.certChainPem,
      privateKeyPem: svid.privateKeyPem,
      bundlePem: svid.bundlePem,
    };
  }
}
