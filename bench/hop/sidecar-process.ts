// One meshlet proxy in its own process (so its CPU time can be read from /proc), configured
// by a JSON argument. Prints "ready <port>" once listening; drains on SIGTERM.
import { InboundProxy } from '../../src/proxy/inbound/inbound-proxy.ts';
import { OutboundProxy } from '../../src/proxy/outbound/outbound-proxy.ts';
import { resolveProxySettings } from '../../src/proxy/config.ts';
import { DenyByPathAuthorizer, strictPathNormalizer } from '../../test/integration/proxy/support/stand-in-policy.ts';
import { StaticSvidSource } from '../../src/identity/sources/static.ts';
import { MeshTls } from '../../src/tls/mesh-tls.ts';
import type { SvidFiles } from './pki.ts';

export type SidecarSpec =
  | { role: 'inbound'; files: SvidFiles; listenPort: number; appPort: number }
  | { role: 'outbound'; files: SvidFiles; listenPort: number; destHost: string; destPort: number; peerPort: number; peerId: string };

const spec = JSON.parse(process.argv[2]!) as SidecarSpec;
const source = await StaticSvidSource.fromPemFiles(spec.files);
await source.start();
const tls = new MeshTls(source);
const settings = resolveProxySettings();

const proxy =
  spec.role === 'inbound'
    ? new InboundProxy({
        tls,
        // The real sidecar runs a per-route policy on every request; a stand-in with one route check does the same amount of asking.
        authorizer: new DenyByPathAuthorizer(['/admin']),
        normalizer: strictPathNormalizer,
        ports: [{ listenPort: spec.listenPort, appPort: spec.appPort, protocol: 'http1' }],
        listenHost: '127.0.0.1',
        settings,
      })
    : new OutboundProxy({
        tls,
        destinations: { mesh: [{ host: spec.destHost, port: spec.destPort, address: { host: '127.0.0.1', port: spec.peerPort }, expected: { spiffeId: spec.peerId } }] },
        listenHost: '127.0.0.1',
        listenPort: spec.listenPort,
        settings,
      });
await proxy.start();
process.stdout.write(`ready\n`);
process.once('SIGTERM', () => {
  void proxy.drain().then(() => process.exit(0));
});
