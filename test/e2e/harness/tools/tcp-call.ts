// A stand-in client for harness tests: connects to each HOST:PORT in turn (a name resolves
// through the pod's hosts file) and prints one line per target, `HOST:PORT -> <what the
// server sent>` or `HOST:PORT -> error <code>`. Exits 0 when every target answered, else 1.
// Several targets per process because starting Node dominates a test's time on a loaded machine.
// Usage: node tcp-call.ts HOST:PORT...
import { connect } from 'node:net';

const targets = process.argv.slice(2);
if (targets.length === 0) {
  console.error('usage: tcp-call.ts HOST:PORT...');
  process.exit(2);
}

function call(target: string): Promise<string> {
  const i = target.lastIndexOf(':');
  const [host, port] = [target.slice(0, i), Number(target.slice(i + 1))];
  return new Promise((resolve) => {
    let received = '';
    const socket = connect({ host, port });
    socket.setTimeout(10_000, () => socket.destroy(Object.assign(new Error('no answer in 10 s'), { code: 'TIMEOUT' })));
    socket.setEncoding('utf8').on('data', (d: string) => (received += d));
    socket.on('end', () => resolve(received.trim()));
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`));
  });
}

let failed = false;
for (const target of targets) {
  const answer = await call(target);
  if (answer.startsWith('error ')) failed = true;
  console.log(`${target} -> ${answer}`);
}
process.exit(failed ? 1 : 0);
