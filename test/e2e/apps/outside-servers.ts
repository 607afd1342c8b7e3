// Servers outside the mesh for the transparent-outbound e2e (test/e2e/outbound-passthrough.test.ts):
//
//   node test/e2e/apps/outside-servers.ts CERT_FILE KEY_FILE
//     8443  HTTPS (the app's own TLS: answers its certificate's fingerprint and the SNI it saw)
//     2525  a server-speaks-first protocol (SMTP-like): sends "220 outside ready\r\n" on connect,
//           then echoes each line prefixed with "250 "
//     7000  a client-speaks-first binary protocol: echoes every byte back
// Prints `listening` once all three listen.
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { createServer } from 'node:net';
import { X509Certificate } from 'node:crypto';

const [certFile, keyFile] = process.argv.slice(2);
const cert = readFileSync(certFile!, 'utf8');
const fingerprint = new X509Certificate(cert).fingerprint256;

const https = createHttpsServer({ cert, key: readFileSync(keyFile!, 'utf8') }, (req, res) => {
  const sni = (req.socket as unknown as { servername?: string | false }).servername || null;
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ fingerprint, sni, path: req.url }));
});
const greeter = createServer((s) => {
  s.write('220 outside ready\r\n');
  let buf = '';
  s.on('data', (d) => {
    buf += d.toString('latin1');
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      s.write(`250 ${buf.slice(0, i).trim()}\r\n`);
      buf = buf.slice(i + 1);
    }
  });
  s.on('error', () => s.destroy());
});
const echo = createServer((s) => {
  s.pipe(s);
  s.on('error', () => s.destroy());
});
let up = 0;
const ready = () => {
  if (++up === 3) console.log('listening');
};
https.listen(8443, '0.0.0.0', ready);
greeter.listen(2525, '0.0.0.0', ready);
echo.listen(7000, '0.0.0.0', ready);
