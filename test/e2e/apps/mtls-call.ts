// A mesh client without a sidecar: HTTPS with an SVID as the client certificate, as a
// caller holding a valid mesh identity would dial a pod directly (for example over IPv6).
//
//   node test/e2e/apps/mtls-call.ts SVID_DIR URL…
//
// SVID_DIR holds tls.crt (chain), tls.key and ca.crt (the trust bundle), as the `files`
// identity source reads them. The server is checked against the bundle, never by hostname
// (X.509-SVID). Prints `result {"url","status","error","body","protocol","serverId"}` per URL.
import { readFileSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import type { TLSSocket } from 'node:tls';

const [dir, ...urls] = process.argv.slice(2);
if (!dir || urls.length === 0) {
  console.error('usage: mtls-call.ts SVID_DIR URL…');
  process.exit(2);
}
const tls = { cert: readFileSync(`${dir}/tls.crt`), key: readFileSync(`${dir}/tls.key`), ca: readFileSync(`${dir}/ca.crt`) };

function call(url: string): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    // ALPNProtocols reaches tls.connect; @types/node leaves it out of https.RequestOptions.
    const options = { ...tls, agent: false, ALPNProtocols: ['http/1.1'], checkServerIdentity: () => undefined, timeout: 10_000 } as RequestOptions;
    const req = request(url, options, (res) => {
      const socket = res.socket as TLSSocket;
      const serverId = socket.getPeerCertificate().subjectaltname?.replace(/^URI:/, '') ?? null;
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ url, status: res.statusCode ?? null, error: null, body, protocol: socket.getProtocol(), serverId }));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ url, status: null, error: err.code ?? err.message, body: '', protocol: null, serverId: null }));
    req.end();
  });
}

for (const url of urls) process.stdout.write(`result ${JSON.stringify(await call(url))}\n`);
