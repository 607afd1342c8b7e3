// Security regression (issue 16 review): a federation key that names the own trust domain in
// another spelling. Upper case is no trust domain at all; a leading or trailing "." makes a
// distinct trust domain to the SPIFFE grammar ("cluster.local." != "cluster.local") that reads as
// the own one in logs, metrics and policies — before the fix a foreign CA could be trusted for
// such a look-alike. Real CA certificates from the repo's own CA code.
import { beforeAll, describe, expect, it } from 'vitest';
import { createRootCa, type CertificateAuthority } from '../../../src/control-plane/identity-service/ca.ts';
import { judgeBundleDirectory, type BundleFileRead, type DirectoryRead } from '../../../src/data-plane/identity/federation/bundle-directory.ts';
import { toSpiffeBundle } from '../../../src/data-plane/identity/trust-bundle.ts';

const DIR = '/var/run/meshlet/federation';
const OWN = 'cluster.local';

function read(files: Record<string, string>): DirectoryRead {
  const list: BundleFileRead[] = Object.entries(files).map(([name, text]) => ({ name, path: `${DIR}/${name}`, text, digest: text }));
  return { files: list, fingerprint: JSON.stringify(files) };
}

describe('a key naming the own trust domain in another spelling is refused', () => {
  let foreign: CertificateAuthority;
  beforeAll(async () => {
    foreign = await createRootCa({ trustDomain: 'partner.example' });
  });

  it.each([
    ['cluster.local', 'FEDERATION_OWN_TRUST_DOMAIN'],
    ['cluster.local.json', 'FEDERATION_OWN_TRUST_DOMAIN'],
    ['cluster.local.', 'FEDERATION_OWN_TRUST_DOMAIN'],
    ['.cluster.local', 'FEDERATION_OWN_TRUST_DOMAIN'],
    ['cluster.local..json', 'FEDERATION_OWN_TRUST_DOMAIN'],
    ['Cluster.Local', 'FEDERATION_BAD_TRUST_DOMAIN'],
  ])('%s: %s, nothing loaded', (name, code) => {
    const { bundles, rejected } = judgeBundleDirectory(read({ [name]: JSON.stringify(toSpiffeBundle(foreign.bundlePem, {})) }), new Map(), OWN);
    expect(bundles.size).toBe(0);
    expect(rejected.map((r) => r.code)).toEqual([code]);
  });

  it('a domain that merely contains the own name is another domain, and is federated', () => {
    const { bundles, rejected } = judgeBundleDirectory(read({ 'cluster.local.partner': JSON.stringify(toSpiffeBundle(foreign.bundlePem, {})) }), new Map(), OWN);
    expect(rejected).toEqual([]);
    expect([...bundles.keys()]).toEqual(['cluster.local.partner']);
  });
});
