// The original destination of a connection that iptables REDIRECTed to the sidecar: the
// address and port the app (or the remote caller) really dialled, before the nat table
// rewrote it to the sidecar's listener. Transparent interception needs it to know where a
// redirected connection was going; Node cannot ask the kernel (there is no getsockopt in
// node:net), so a small N-API addon does (original_dst.c, built by `npm ci`:
// docs/original-destination.md). Explicit mode never calls this.
//
// The addon is loaded on first use, never at import: a process without it (no C toolchain
// when `npm ci` ran) starts and serves explicit mode, and only a caller that needs an original
// destination gets the ORIGINAL_DST_UNAVAILABLE error, saying what to do.
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { MeshletError } from '../../../common/errors/meshlet-error.ts';

export interface OriginalDestination {
  address: string;
  port: number;
  family: 4 | 6;
}

export type OriginalDstAvailability = { ok: true } | { ok: false; reason: string };

interface Addon {
  get(fd: number): OriginalDestination | null;
}

/** Where node-gyp puts the addon: build/Release under the repository (or the image's /app) root. */
export const DEFAULT_ADDON_PATH = fileURLToPath(new URL('../../../../build/Release/original_dst.node', import.meta.url));

let addonPath = DEFAULT_ADDON_PATH;
let loaded: { addon: Addon } | { error: MeshletError } | undefined;

/**
 * Test hook: load the addon from `path` instead (undefined: the default) and forget any
 * earlier load. A missing file is how the tests show the unavailable path; the product never
 * calls this.
 */
export function setOriginalDstAddonPath(path: string | undefined): void {
  addonPath = path ?? DEFAULT_ADDON_PATH;
  loaded = undefined;
}

function load(): { addon: Addon } | { error: MeshletError } {
  if (loaded) return loaded;
  try {
    const addon = createRequire(import.meta.url)(addonPath) as Partial<Addon>;
    if (typeof addon.get !== 'function') throw new Error('it exports no get() function');
    loaded = { addon: addon as Addon };
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    loaded = {
      error: new MeshletError(
        'ORIGINAL_DST_UNAVAILABLE',
        `the original-destination addon cannot be loaded from ${addonPath} (${why}); transparent interception needs it to learn where a redirected connection was going. ` +
          'Build it: run `npm ci` (or `npm run install` to rebuild only the addon) on a machine with a C compiler, make and python3 (apt-get install g++ make python3), ' +
          "or use the image, whose build stage compiles it (deploy/Dockerfile). Explicit mode works without it.",
        { cause: err },
      ),
    };
  }
  return loaded;
}

/** Whether originalDestination() can work here, and if not why (for a startup check or a log line). */
export function originalDstAvailable(): OriginalDstAvailability {
  const l = load();
  return 'addon' in l ? { ok: true } : { ok: false, reason: l.error.message };
}

/**
 * The destination `socket` (an accepted or connected TCP socket) had before any iptables
 * REDIRECT/DNAT, or null when netfilter has no record of the connection (conntrack is not
 * tracking it: nothing in this network namespace redirected it). A connection that conntrack
 * tracks but nothing rewrote gives its own unchanged destination. Throws ORIGINAL_DST_UNAVAILABLE
 * when the addon cannot load, ORIGINAL_DST_FAILED when the kernel refuses (errno text).
 */
export function originalDestination(socket: Socket): OriginalDestination | null {
  const l = load();
  if ('error' in l) throw l.error;
  // The descriptor is only reachable through the socket's libuv handle (TCPWrap's `fd`, set
  // on Unix): node:net has no public accessor for a socket's descriptor, and getsockopt needs it.
  const fd = (socket as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) {
    throw new MeshletError('ORIGINAL_DST_FAILED', 'the socket has no file descriptor (it is closed, not yet connected, or not a TCP socket)');
  }
  try {
    return l.addon.get(fd);
  } catch (err) {
    throw new MeshletError('ORIGINAL_DST_FAILED', `cannot read the original destination: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}
