// The listener of test/e2e/original-dst.test.ts: it stands where the sidecar's transparent
// listener would, reads each accepted connection's original destination with the addon
// (src/data-plane/proxy/original-dst/original-dst.ts) and answers with one JSON line:
//   {"local":{"address","port"},"original":{address,port,family}|null}   or   {"error":CODE,"message"}
// then closes. Usage: node original-dst-echo.ts HOST:PORT...   (HOST `::` listens dual-stack)
import { createServer } from 'node:net';
import { originalDestination } from '../../../src/data-plane/proxy/original-dst/original-dst.ts';

const targets = process.argv.slice(2);
if (targets.length === 0) {
  console.error('usage: original-dst-echo.ts HOST:PORT...');
  process.exit(2);
}
const servers = targets.map((target) => {
  const i = target.lastIndexOf(':');
  const [host, port] = [target.slice(0, i), Number(target.slice(i + 1))];
  return createServer((socket) => {
    socket.on('error', () => {});
    let answer: unknown;
    try {
      answer = { local: { address: socket.localAddress, port: socket.localPort }, original: originalDestination(socket) };
    } catch (err) {
      const e = err as { code?: string; message?: string };
      answer = { error: e.code, message: e.message };
    }
    socket.end(`${JSON.stringify(answer)}\n`);
  }).listen({ host, port, ipv6Only: false }, () => console.log(`listening ${target}`));
});
process.on('SIGTERM', () => {
  for (const s of servers) s.close();
  process.exit(0);
});
