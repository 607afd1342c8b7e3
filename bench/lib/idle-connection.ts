import * as tls from 'node:tls';
import type * as net from 'node:net';
import { ResponseReader } from './http-sampler.ts';

/**
 * One keep-alive HTTP/1.1 connection that makes one request and then idles, as a pooled
 * client connection of an app does between bursts: dialed (plain TCP to an outbound proxy, or
 * mTLS to an inbound one), one GET answered 200 and read to its last body byte, then left
 * open with nothing in flight. The proxy holds the connection, its TLS state and its parser.
 */
export interface IdleConnection {
  socket: net.Socket;
  /** False once the other side closed it (an idle timeout, a connection cap). */
  open(): boolean;
}

export function openIdleConnection(socket: net.Socket, path: string, hostHeader: string, timeoutMs = 30_000): Promise<IdleConnection> {
  return new Promise((resolve, reject) => {
    let closed = false;
    let settled = false;
    const response = new ResponseReader();
    const timer = setTimeout(() => fail(new Error(`no full response within ${timeoutMs} ms`)), timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      if (!settled) reject(err);
      settled = true;
    };
    // After the response, an error or a close only marks the connection closed: the scenario counts those.
    socket.on('error', (err) => (settled ? undefined : fail(err)));
    socket.once('close', () => {
      closed = true;
      if (!settled) fail(new Error('closed before the whole response'));
    });
    const onData = (chunk: Buffer) => {
      if (!response.push(chunk)) return;
      socket.off('data', onData);
      clearTimeout(timer);
      if (response.status !== 200) return fail(new Error(`status ${response.status}`));
      settled = true;
      resolve({ socket, open: () => !closed && !socket.destroyed });
    };
    socket.on('data', onData);
    socket.once(socket instanceof tls.TLSSocket ? 'secureConnect' : 'connect', () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostHeader}\r\nUser-Agent: meshlet-bench-idle\r\n\r\n`);
    });
  });
}
