import { join } from 'node:path';
import type { SvidFiles } from '../hop/pki.ts';

/**
 * The nginx peer pair for the gRPC scenario: the same shape as the HTTP pair of
 * bench/hop/nginx.ts (one process each, TLS 1.3 mTLS between them with the same SVID files),
 * speaking HTTP/2 on both legs with grpc_pass. The upstream connection pool is kept alive
 * like the HTTP pair's.
 */
function processHead(dir: string, name: string): string {
  return `daemon off;
master_process off;
worker_processes 1;
error_log ${join(dir, name + '.error.log')} warn;
pid ${join(dir, name + '.pid')};
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${join(dir, name + '.body')};
  proxy_temp_path ${join(dir, name + '.proxy')};
  fastcgi_temp_path ${join(dir, name + '.fcgi')};
  uwsgi_temp_path ${join(dir, name + '.uwsgi')};
  scgi_temp_path ${join(dir, name + '.scgi')};
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  http2_max_requests 1000000;
  tcp_nodelay on;
`;
}

/** Plaintext h2c in (what the app's gRPC client speaks), mTLS HTTP/2 out. */
export function nginxGrpcOutboundConf(dir: string, port: number, peerPort: number, files: SvidFiles): string {
  return `${processHead(dir, 'grpc-out')}
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

/** mTLS HTTP/2 in (client certificate required), plaintext h2c to the gRPC app. */
export function nginxGrpcInboundConf(dir: string, port: number, appPort: number, files: SvidFiles): string {
  return `${processHead(dir, 'grpc-in')}
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
