import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SvidFiles } from './pki.ts';

/**
 * nginx processes for the hop bench: the upstream (1 KB body) and the peer mTLS pair, each a
 * single process (master_process off, one worker) so its CPU time is one /proc entry.
 */

const ONE_KB = 'x'.repeat(1024);

function common(dir: string, name: string): string {
  return `daemon off;
master_process off;
worker_processes 1;
error_log ${join(dir, name + '.error.log')} warn;
pid ${join(dir, name + '.pid')};
events { worker_connections 4096; }
`;
}

function httpCommon(dir: string, name: string): string {
  return `access_log off;
client_body_temp_path ${join(dir, name + '.body')};
proxy_temp_path ${join(dir, name + '.proxy')};
fastcgi_temp_path ${join(dir, name + '.fcgi')};
uwsgi_temp_path ${join(dir, name + '.uwsgi')};
scgi_temp_path ${join(dir, name + '.scgi')};
keepalive_requests 1000000;
keepalive_timeout 120s;
tcp_nodelay on;
`;
}

export function upstreamConf(dir: string, port: number): string {
  return `${common(dir, 'upstream')}
http {
  ${httpCommon(dir, 'upstream')}
  server {
    listen 127.0.0.1:${port};
    default_type text/plain;
    location / { return 200 "${ONE_KB}"; }
  }
}
`;
}

/** The client side of the peer pair: plain in, mTLS out (keep-alive pool) — what meshlet's outbound does. */
export function nginxOutboundConf(dir: string, port: number, peerPort: number, files: SvidFiles): string {
  return `${common(dir, 'nginx-out')}
http {
  ${httpCommon(dir, 'nginx-out')}
  upstream peer { server 127.0.0.1:${peerPort}; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass https://peer;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_ssl_certificate ${files.svid};
      proxy_ssl_certificate_key ${files.key};
      proxy_ssl_trusted_certificate ${files.bundle};
      proxy_ssl_protocols TLSv1.3;
      proxy_ssl_session_reuse on;
      # nginx can only check a DNS name against the server certificate, and SVIDs carry a
      # SPIFFE URI SAN only; the chain is not verified here (a handshake cost, amortized by keep-alive).
      proxy_ssl_verify off;
    }
  }
}
`;
}

/** The server side of the peer pair: mTLS in (client certificate required), plain keep-alive to the upstream. */
export function nginxInboundConf(dir: string, port: number, appPort: number, files: SvidFiles): string {
  return `${common(dir, 'nginx-in')}
http {
  ${httpCommon(dir, 'nginx-in')}
  upstream app { server 127.0.0.1:${appPort}; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${files.svid};
    ssl_certificate_key ${files.key};
    ssl_client_certificate ${files.bundle};
    ssl_verify_client on;
    ssl_protocols TLSv1.3;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Meshlet-Peer-Identity $ssl_client_s_dn;
    }
  }
}
`;
}

export async function startNginx(dir: string, name: string, conf: string): Promise<ChildProcess> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${name}.conf`);
  await writeFile(file, conf);
  const child = spawn('nginx', ['-c', file, '-p', dir, '-e', join(dir, name + '.error.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  child.once('exit', (code) => {
    if (code !== 0 && code !== null) process.stderr.write(`nginx ${name} exited ${code}: ${stderr}\n`);
  });
  return child;
}
