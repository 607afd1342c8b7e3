import type * as NodeHttp from 'node:http';
import { http } from '../../../common/net/node-http.ts';
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { ProxyError } from '../http/errors.ts';
import { forwardResponseHeaders } from '../http/headers.ts';

/**
 * HTTP/1.1 Upgrade (WebSocket, RFC 6455 §4; RFC 9110 §7.8) through one hop. The request was
 * authorized like any other before it gets here. It is sent to the next hop on a connection
 * of its own (an upgraded connection is never returned to a pool), and then:
 *  - a `101 Switching Protocols` answer is relayed head first, then both sockets are piped
 *    into each other until either side closes: from here on the bytes are the upgraded
 *    protocol's, not HTTP's;
 *  - any other answer is relayed as an ordinary response and the connection closed. The
 *    client socket is never turned into a raw pipe without a 101, since a raw pipe after a
 *    refusal would let the client send further requests the policy never saw.
 */
export interface UpgradeRequest {
  readonly method: string;
  /** Origin-form target, already normalized and authorized. */
  readonly path: string;
  /** Forwarded fields (hop-by-hop removed); Connection/Upgrade are added here. */
  readonly headers: string[];
  /** The Upgrade field the client sent (the protocols it asks for). */
  readonly upgrade: string;
}

/** Upgrade tokens refused: h2c through a tunnel would carry HTTP/2 requests the policy never sees ("h2c smuggling"). */
export function refusedUpgrade(upgrade: string): boolean {
  return upgrade.split(',').some((t) => t.trim().toLowerCase() === 'h2c');
}

export function forwardUpgrade(
  client: Duplex,
  head: Buffer,
  request: UpgradeRequest,
  connect: () => Promise<net.Socket>,
  fail: (client: Duplex, err: ProxyError) => void,
): void {
  let clientGone = false;
  const onClientGone = (): void => {
    clientGone = true;
  };
  client.once('close', onClientGone);
  client.on('error', () => client.destroy());
  connect().then(
    (upstream) => {
      if (clientGone) {
        upstream.destroy();
        return;
      }
      const headers = [...request.headers, 'connection', 'upgrade', 'upgrade', request.upgrade];
      const req = http.request({ method: request.method, path: request.path, headers, createConnection: () => upstream });
      req.on('upgrade', (res: NodeHttp.IncomingMessage, upSocket: net.Socket, upHead: Buffer) => {
        client.off('close', onClientGone);
        if (clientGone) {
          upSocket.destroy();
          return;
        }
        client.write(statusLine(101, res.statusMessage) + headerLines(res.rawHeaders) + '\r\n');
        if (upHead.length > 0) client.write(upHead);
        if (head.length > 0) upSocket.write(head);
        tunnel(client, upSocket);
      });
      req.on('response', (res: NodeHttp.IncomingMessage) => {
        client.off('close', onClientGone);
        const kept = forwardResponseHeaders(res.rawHeaders.map((h) => Buffer.from(h, 'latin1')));
        client.write(statusLine(res.statusCode ?? 502, res.statusMessage) + headerLines([...kept, 'connection', 'close']) + '\r\n');
        res.pipe(client);
        res.once('error', () => client.destroy());
      });
      req.on('error', (err: Error) => {
        if (clientGone) return;
        fail(client, new ProxyError('MESHLET_UPSTREAM_RESET', `the next hop closed the connection before answering the upgrade: ${(err as { code?: string }).code ?? err.message}`, { cause: err }));
      });
      req.end();
    },
    (err: unknown) => {
      if (clientGone) return;
      fail(client, err instanceof ProxyError ? err : new ProxyError('MESHLET_INTERNAL', 'could not reach the next hop', { cause: err }));
    },
  );
}

function statusLine(status: number, message: string | undefined): string {
  return `HTTP/1.1 ${status} ${message || http.STATUS_CODES[status] || ''}\r\n`;
}

function headerLines(flat: readonly string[]): string {
  let out = '';
  for (let i = 0; i < flat.length; i += 2) out += `${flat[i]}: ${flat[i + 1]}\r\n`;
  return out;
}

/** Both directions until either side closes; an error or close on one side ends the other. */
function tunnel(a: Duplex, b: net.Socket): void {
  b.setNoDelay(true);
  const close = (): void => {
    a.destroy();
    b.destroy();
  };
  a.on('error', close);
  b.on('error', close);
  a.once('close', close);
  b.once('close', close);
  a.pipe(b);
  b.pipe(a);
}
