import { deepFreeze, EnvReader, integerIn, text, type Env, type EnvVar } from '../../common/config/env.ts';
import { readInjectionSettingsWith, type InjectionSettings } from './patch/settings.ts';
import { WEBHOOK_HANDSHAKE_TIMEOUT_MS, WEBHOOK_MAX_BODY_BYTES, WEBHOOK_MAX_CONNECTIONS, WEBHOOK_REQUEST_TIMEOUT_MS } from './webhook-server.ts';

/**
 * `meshlet injector`'s configuration: the webhook process's own variables, listed once here
 * with their defaults, plus what injected pods get (INJECTION_ENV, src/control-plane/injector/patch/settings.ts).
 * Read with the same EnvReader as the sidecar and the identity service: every bad variable is
 * reported in one ConfigError before the process refuses to start. `meshlet injector --help`
 * is generated from these lists; docs/injector.md's tables are checked against them.
 */
export interface InjectorConfig {
  certFile: string;
  keyFile: string;
  host: string;
  port: number;
  requestTimeoutMs: number;
  maxBodyBytes: number;
  /** TLS handshake deadline of a webhook connection, from accept. */
  handshakeTimeoutMs: number;
  /** Open webhook connections at most; more are closed at accept and counted. */
  maxConnections: number;
  /** Plain-HTTP admin port (/live /ready /metrics); 0 = any free port; undefined = none. */
  adminPort: number | undefined;
  /** What the injected sidecars get (image, trust domain, defaults…). */
  injection: Readonly<InjectionSettings>;
}

/** A port where 0 asks for any free one (tests, local runs). */
const listenPort = integerIn(0, 65535);

export const INJECTOR_ENV = {
  certFile: { name: 'MESHLET_INJECTOR_TLS_CERT', description: 'PEM serving certificate (SAN <service>.<namespace>.svc)', parse: text },
  keyFile: { name: 'MESHLET_INJECTOR_TLS_KEY', description: 'PEM private key of MESHLET_INJECTOR_TLS_CERT', parse: text },
  host: { name: 'MESHLET_INJECTOR_HOST', default: '0.0.0.0', description: 'listen address of the webhook and the admin port', parse: text },
  port: { name: 'MESHLET_INJECTOR_PORT', default: '8443', description: 'webhook (HTTPS) listen port', parse: listenPort },
  requestTimeoutMs: { name: 'MESHLET_INJECTOR_REQUEST_TIMEOUT_MS', default: String(WEBHOOK_REQUEST_TIMEOUT_MS), description: 'whole-request deadline in ms, 100-30000 (then 408)', parse: integerIn(100, 30_000) },
  maxBodyBytes: { name: 'MESHLET_INJECTOR_MAX_BODY_BYTES', default: String(WEBHOOK_MAX_BODY_BYTES), description: 'largest AdmissionReview accepted, 1024-67108864 bytes (larger: 413)', parse: integerIn(1024, 64 * 1024 * 1024) },
  handshakeTimeoutMs: { name: 'MESHLET_INJECTOR_HANDSHAKE_TIMEOUT_MS', default: String(WEBHOOK_HANDSHAKE_TIMEOUT_MS), description: 'TLS handshake deadline in ms from accept, 100-30000', parse: integerIn(100, 30_000) },
  maxConnections: { name: 'MESHLET_INJECTOR_MAX_CONNECTIONS', default: String(WEBHOOK_MAX_CONNECTIONS), description: 'open webhook connections at most; more are closed at accept and counted', parse: integerIn(1, 1_000_000) },
  adminPort: { name: 'MESHLET_INJECTOR_ADMIN_PORT', default: '9090', description: 'plain-HTTP admin port for /live /ready /metrics; "off" disables it', parse: (raw: string) => (raw === 'off' ? undefined : listenPort(raw)) },
} satisfies Record<string, EnvVar<unknown>>;

/** Reads the injector's settings from the environment; throws ConfigError listing every bad variable. */
export function readInjectorConfig(env: Env): Readonly<InjectorConfig> {
  const r = new EnvReader(env);
  const v = r.readFrom(INJECTOR_ENV);
  const config: InjectorConfig = {
    certFile: v('certFile'),
    keyFile: v('keyFile'),
    host: v('host'),
    port: v('port'),
    requestTimeoutMs: v('requestTimeoutMs'),
    maxBodyBytes: v('maxBodyBytes'),
    handshakeTimeoutMs: v('handshakeTimeoutMs'),
    maxConnections: v('maxConnections'),
    adminPort: v('adminPort'),
    // The injection settings include the mesh default policy the sidecars get: a typo there is
    // refused here, with the rest.
    injection: readInjectionSettingsWith(r),
  };
  r.done();
  return deepFreeze(config);
}
