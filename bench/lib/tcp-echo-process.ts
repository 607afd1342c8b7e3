// The opaque TCP upstream: a node:net server echoing every byte back, in its own process (its
// CPU must not be the load generator's). Half-close is passed on: when the caller sends FIN,
// the echo finishes writing and sends its own.
//   node bench/lib/tcp-echo-process.ts PORT
import * as net from 'node:net';

const server = net.createServer({ noDelay: true }, (socket) => {
  socket.on('error', () => socket.destroy());
  socket.pipe(socket);
});
server.listen(Number(process.argv[2]), '127.0.0.1');
process.once('SIGTERM', () => {
  // Connections still open would keep close() waiting: exit after a second regardless.
  setTimeout(() => process.exit(0), 1000).unref();
  server.close(() => process.exit(0));
});
