// The original-destination addon on connections nothing redirected (docs/original-destination.md);
// test/e2e/original-dst.test.ts shows it on real iptables REDIRECTs in a network namespace.
//
// What Linux answers without a REDIRECT: SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST look the
// connection up in conntrack. Conntrack runs in a network namespace only once something there
// needs it (a nat table, a state match: the kernel registers its hooks per namespace on
// demand). Where it runs, the entry of a connection nothing rewrote holds the destination
// unchanged, so the answer is the socket's own local address and port; where it does not
// (a namespace without such rules: this test machine's, most CI runners'), the lookup finds
// nothing, the kernel says ENOENT and originalDestination() returns null. Either is "not
// redirected", so the assertions below accept exactly those two answers and nothing else;
// the e2e test pins each case in a namespace whose rules it controls.
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MeshletError } from '../../../src/common/errors/meshlet-error.ts';
import {
  DEFAULT_ADDON_PATH,
  originalDestination,
  originalDstAvailable,
  setOriginalDstAddonPath,
  type OriginalDestination,
} from '../../../src/data-plane/proxy/original-dst/original-dst.ts';

const availability = originalDstAvailable();
if (!availability.ok) console.warn(`[original-dst] SKIPPED the addon's loopback tests: ${availability.reason}`);

/** Accepts one connection to `listenHost`, dialled at `dialHost`, and hands `inspect` the server side. */
async function onAccepted<T>(listenHost: string, dialHost: string, inspect: (accepted: Socket) => T): Promise<T> {
  let server: Server | undefined;
  let client: Socket | undefined;
  try {
    return await new Promise<T>((resolve, reject) => {
      server = createServer((accepted) => {
        try {
          resolve(inspect(accepted));
        } catch (err) {
          reject(err);
        } finally {
          accepted.destroy();
        }
      });
      server.on('error', reject);
      server.listen({ host: listenHost, port: 0 }, () => {
        client = createConnection({ host: dialHost, port: (server!.address() as AddressInfo).port });
        client.on('error', reject);
      });
    });
  } finally {
    client?.destroy();
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
  }
}

function hasIpv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer().once('error', () => resolve(false));
    s.listen({ host: '::1', port: 0 }, () => s.close(() => resolve(true)));
  });
}

/** null (no conntrack entry) or the socket's own destination (an entry nothing rewrote); see the top of the file. */
function expectNotRedirected(got: OriginalDestination | null, own: OriginalDestination): void {
  if (got !== null) expect(got).toEqual(own);
}

describe.skipIf(!availability.ok)('originalDestination on a connection nothing redirected', () => {
  it('IPv4 loopback: null or the socket\'s own address and port, never anything else', async () => {
    const seen = await onAccepted('127.0.0.1', '127.0.0.1', (s) => ({ got: originalDestination(s), own: { address: s.localAddress!, port: s.localPort!, family: 4 as const } }));
    expectNotRedirected(seen.got, seen.own);
    expect(seen.own.address).toBe('127.0.0.1');
  });

  it('IPv6 loopback (::1): the IPv6 option (IP6T_SO_ORIGINAL_DST), same answers', async (ctx) => {
    if (!(await hasIpv6Loopback())) ctx.skip('no IPv6 loopback (::1) on this machine');
    const seen = await onAccepted('::1', '::1', (s) => ({ got: originalDestination(s), own: { address: s.localAddress!, port: s.localPort!, family: 6 as const } }));
    expectNotRedirected(seen.got, seen.own);
  });

  it('an IPv4 connection accepted by a dual-stack (::) listener is asked as IPv4 and answered as family 4', async (ctx) => {
    if (!(await hasIpv6Loopback())) ctx.skip('no IPv6 on this machine (a :: listener needs it)');
    const seen = await onAccepted('::', '127.0.0.1', (s) => ({ local: s.localAddress, got: originalDestination(s), own: { address: '127.0.0.1', port: s.localPort!, family: 4 as const } }));
    expect(seen.local).toBe('::ffff:127.0.0.1');
    expectNotRedirected(seen.got, seen.own);
  });

  it('a closed socket has no descriptor: ORIGINAL_DST_FAILED', async () => {
    const closed = await onAccepted('127.0.0.1', '127.0.0.1', (s) => s);
    expect(() => originalDestination(closed)).toThrow(expect.objectContaining({ code: 'ORIGINAL_DST_FAILED' }));
  });

  it('a Unix-domain socket is refused with a clear error, not a wrong answer', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshlet-od-'));
    const path = join(dir, 'sock');
    const server = createServer();
    try {
      await new Promise<void>((r) => server.listen(path, r));
      const accepted = new Promise<Socket>((r) => server.once('connection', r));
      const client = createConnection(path);
      const s = await accepted;
      let err: MeshletError | undefined;
      try {
        originalDestination(s);
      } catch (e) {
        err = e as MeshletError;
      } finally {
        s.destroy();
        client.destroy();
      }
      expect(err).toBeInstanceOf(MeshletError);
      expect(err?.code).toBe('ORIGINAL_DST_FAILED');
      expect(err?.message).toMatch(/not an IPv4 or IPv6 socket/);
    } finally {
      await new Promise((r) => server.close(r));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('when the addon cannot be loaded', () => {
  afterEach(() => setOriginalDstAddonPath(undefined));

  it('originalDstAvailable() reports it, it does not throw (the module loads the addon on first use, never at import)', () => {
    setOriginalDstAddonPath('/nonexistent/build/Release/original_dst.node');
    const a = originalDstAvailable();
    expect(a.ok).toBe(false);
    expect(!a.ok && a.reason).toMatch(/^the original-destination addon cannot be loaded from \/nonexistent\//);
  });

  it('originalDestination throws ORIGINAL_DST_UNAVAILABLE naming the path, the load error and what to do', async () => {
    const missing = '/nonexistent/build/Release/original_dst.node';
    setOriginalDstAddonPath(missing);
    const availability = originalDstAvailable();
    expect(availability.ok).toBe(false);
    const err = await onAccepted('127.0.0.1', '127.0.0.1', (s) => {
      try {
        originalDestination(s);
        return undefined;
      } catch (e) {
        return e;
      }
    });
    expect(err).toBeInstanceOf(MeshletError);
    const e = err as MeshletError;
    expect(e.code).toBe('ORIGINAL_DST_UNAVAILABLE');
    expect(e.message).toContain(missing);
    expect(e.message).toMatch(/Cannot find module/); // the loader's own error
    expect(e.message).toMatch(/npm ci/);
    expect(e.message).toMatch(/python3/);
    expect(e.message).toMatch(/deploy\/Dockerfile/);
    expect(e.message).toMatch(/Explicit mode works without it/);
    expect(!availability.ok && availability.reason).toBe(e.message);
  });

  it('the default path is build/Release/original_dst.node under the repository root', () => {
    expect(DEFAULT_ADDON_PATH).toBe(join(import.meta.dirname, '../../../build/Release/original_dst.node'));
  });
});
