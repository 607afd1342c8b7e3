// The TLS-passthrough scenario's server outside the mesh: a node:tls server echoing every byte
// back (TLS 1.3, its own certificate), run in its own network-namespace pod. Half-close is
// passed on, as the TCP echo does. Prints "listening" when it accepts connections.
//   node bench/lib/tls-echo-process.ts PORT CERT_FILE KEY_FILE
import { readFileSync } from 'node:fs';
import * as tls from 'node:tls';

const [port, certFile, keyFile] = process.argv.slice(2);
if (!port || !certFile || !keyFile) {
  process.stderr.write('usage: tls-echo-process.ts PORT CERT_FILE KEY_FILE\n');
  process.exit(2);
}
const server = tls.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile), minVersion: 'TLSv1.3', allowHalfOpen: true }, (socket) => {
  socket.setNoDelay(true);
  socket.on('error', () => socket.destroy());
  socket.pipe(socket);
});
server.on('tlsClientError', () => {});
server.listen(Number(port), '0.0.0.0', () => process.stdout.write(`listening ${port}\n`));
process.once('SIGTERM', () => {
  setTimeout(() => process.exit(0), 1000).unref();
  server.close(() => process.exit(0));
});
