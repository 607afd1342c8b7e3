// A stand-in server for harness tests: listens on each port given and answers every
// connection with one line naming itself, the port it accepted on, the peer address and its
// uid, then closes. Usage: node tcp-greeter.ts NAME PORT...
import { createServer } from 'node:net';

const [name, ...ports] = process.argv.slice(2);
if (!name || ports.length === 0) {
  console.error('usage: tcp-greeter.ts NAME PORT...');
  process.exit(2);
}
const servers = ports.map((port) =>
  createServer((socket) => {
    socket.on('error', () => {});
    socket.end(`${name} port=${socket.localPort} peer=${socket.remoteAddress} uid=${process.getuid?.()}\n`);
  }).listen(Number(port), '0.0.0.0', () => console.log(`listening ${port}`)),
);
process.on('SIGTERM', () => {
  for (const s of servers) s.close();
  process.exit(0);
});
