import { join } from 'node:path';
import type { SvidFiles } from './bench-pki.ts';

/**
 * nginx configurations of the bench: the upstream (1 KB body), the HTTP peer pair, the gRPC
 * peer pair and the stream (opaque TCP) pair. Each is a single process (master_process off,
 * one worker) so its CPU time is one /proc entry; every pair speaks TLS 1.3 mTLS between its
 * two processes with the same SVID files meshlet uses; the HTTP and gRPC pairs keep their
 * upstream connection pools alive (a stream proxy has none: one peer connection per client's).
 */

const ONE_KB = 'x'.repeat(1024);

function processHead(dir: string, name: string): string {
  return `daemon off;
master_process off;
worker_processes 1;
error_log ${join(dir, name + '.error.log')} warn;
pid ${join(dir, name + '.pid')};
events { worker_connections 4096; }
`;
}

/** The shared `http` block settings; `extra` lines go before `tcp_nodelay`. */
function httpCommonLines(dir: string, name: string, extra: string[] = []): string[] {
  return [
    'access_log off;',
    `client_body_temp_path ${join(dir, name + '.body')};`,
    `proxy_temp_path ${join(dir, name + '.proxy')};`,
    `fastcgi_temp_path ${join(dir, name + '.fcgi')};`,
    `uwsgi_temp_path ${join(dir, name + '.uwsgi')};`,
    `scgi_temp_path ${join(dir, name + '.scgi')};`,
    'keepalive_requests 1000000;',
    'keepalive_timeout 120s;',
    ...extra,
    'tcp_nodelay on;',
  ];
}

function httpCommon(dir: string, name: string): string {
  return httpCommonLines(dir, name).join('\n') + '\n';
}

export function upstreamConf(dir: string, port: number): string {
  return `${processHead(dir, 'upstream')}
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

/** The client side of the HTTP pair: plain in, mTLS out (keep-alive pool) — what meshlet's outbound does. */
export function nginxOutboundConf(dir: string, port: number, peerPort: number, files: SvidFiles): string {
  return `${processHead(dir, 'nginx-out')}
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

/** The server side of the HTTP pair: mTLS in (client certificate required), plain keep-alive to the upstream. */
export function nginxInboundConf(dir: string, port: number, appPort: number, files: SvidFiles): string {
  return `${processHead(dir, 'nginx-in')}
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

function grpcHead(dir: string, name: string): string {
  const lines = httpCommonLines(dir, name, ['http2_max_requests 1000000;']);
  return `${processHead(dir, name)}http {\n${lines.map((l) => `  ${l}\n`).join('')}`;
}

/** The client side of the gRPC pair: plaintext h2c in (what the app's gRPC client speaks), mTLS HTTP/2 out. */
export function nginxGrpcOutboundConf(dir: string, port: number, peerPort: number, files: SvidFiles): string {
  return `${grpcHead(dir, 'grpc-out')}
  upstream peer { server 127.0.0.1:${peerPort}; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${port} http2;
    location / {
      grpc_pass grpcs://peer;
      grpc_ssl_certificate ${files.svid};
      grpc_ssl_certificate_key ${files.key};
      grpc_ssl_trusted_certificate ${files.bundle};
      grpc_ssl_protocols TLSv1.3;
      grpc_ssl_session_reuse on;
      # As in the HTTP pair: nginx can only check DNS names, SVIDs carry a SPIFFE URI SAN only.
      grpc_ssl_verify off;
    }
  }
}
`;
}

/** The server side of the gRPC pair: mTLS HTTP/2 in (client certificate required), plaintext h2c to the gRPC app. */
export function nginxGrpcInboundConf(dir: string, port: number, appPort: number, files: SvidFiles): string {
  return `${grpcHead(dir, 'grpc-in')}
  upstream app { server 127.0.0.1:${appPort}; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${port} ssl http2;
    ssl_certificate ${files.svid};
    ssl_certificate_key ${files.key};
    ssl_client_certificate ${files.bundle};
    ssl_verify_client on;
    ssl_protocols TLSv1.3;
    location / { grpc_pass grpc://app; }
  }
}
`;
}

/**
 * The opaque TCP pair: nginx's stream proxy (ngx_stream_module; Debian ships it dynamic, in
 * libnginx-mod-stream, so `loadModule` is the .so to load, or null when it is built in).
 */
function streamHead(dir: string, name: string, loadModule: string | null): string {
  return `${loadModule ? `load_module ${loadModule};\n` : ''}${processHead(dir, name)}`;
}

/**
 * The client side of the TCP pair: plain TCP in, mTLS out — what meshlet's MESHLET_OUTBOUND_TCP
 * listener does. A stream proxy has no connection pool: every client connection is one TLS
 * connection to the peer, as in meshlet.
 */
export function nginxStreamOutboundConf(dir: string, port: number, peerPort: number, files: SvidFiles, loadModule: string | null): string {
  return `${streamHead(dir, 'stream-out', loadModule)}
stream {
  server {
    listen 127.0.0.1:${port};
    tcp_nodelay on;
    proxy_pass 127.0.0.1:${peerPort};
    proxy_ssl on;
    proxy_ssl_certificate ${files.svid};
    proxy_ssl_certificate_key ${files.key};
    proxy_ssl_trusted_certificate ${files.bundle};
    proxy_ssl_protocols TLSv1.3;
    # Both sides resume their last session with the peer (meshlet: MESHLET_TLS_SESSION_RESUMPTION=on,
    # its default; nginx: this, its default): the same work on both sides.
    proxy_ssl_session_reuse on;
    # As in the HTTP pair: nginx can only check DNS names, SVIDs carry a SPIFFE URI SAN only.
    proxy_ssl_verify off;
  }
}
`;
}

/** The server side of the TCP pair: mTLS in (client certificate required), plain TCP to the app. */
export function nginxStreamInboundConf(dir: string, port: number, appPort: number, files: SvidFiles, loadModule: string | null): string {
  return `${streamHead(dir, 'stream-in', loadModule)}
stream {
  server {
    listen 127.0.0.1:${port} ssl;
    tcp_nodelay on;
    ssl_certificate ${files.svid};
    ssl_certificate_key ${files.key};
    ssl_client_certificate ${files.bundle};
    ssl_verify_client on;
    ssl_protocols TLSv1.3;
    proxy_pass 127.0.0.1:${appPort};
  }
}
`;
}
