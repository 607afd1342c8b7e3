import { describe, expect, it } from 'vitest';
import { WorkloadApiSource, workloadApiTarget } from '../../../src/data-plane/identity/sources/workload-api.ts';
import { causeCodes } from './events.ts';

// SPIFFE_Workload_Endpoint.md §4: unix:///absolute/path or tcp://IP:port, nothing else.
describe('workload-api source: endpoint address', () => {
  it.each([
    ['unix:///run/spire/sockets/agent.sock', 'unix:///run/spire/sockets/agent.sock'],
    ['tcp://127.0.0.1:8081', 'ipv4:127.0.0.1:8081'],
    ['tcp://[::1]:8081', 'ipv6:[::1]:8081'],
  ])('accepts %s', (endpoint, target) => {
    expect(workloadApiTarget(endpoint)).toBe(target);
  });

  it.each([
    ['/run/spire/sockets/agent.sock', /not a URI/],
    ['unix://run/spire/agent.sock', /no authority/],
    ['unix:///', /path is missing/],
    ['unix:///a.sock?x=1', /query/],
    ['unix:///a.sock#f', /fragment/],
    ['tcp://localhost:8081', /must be an IP address/],
    ['tcp://127.0.0.1', /port is missing/],
    ['tcp://127.0.0.1:8081/path', /no path/],
    ['tcp://user@127.0.0.1:8081', /userinfo/],
    ['http://127.0.0.1:8081', /scheme "http"/],
  ])('rejects %s', (endpoint, why) => {
    let err: unknown;
    try {
      workloadApiTarget(endpoint);
    } catch (e) {
      err = e;
    }
    expect(causeCodes(err)[0]).toBe('WORKLOAD_API_BAD_ENDPOINT');
    expect((err as Error).message).toMatch(why);
  });

  it('needs an endpoint: from options or SPIFFE_ENDPOINT_SOCKET', () => {
    expect(() => new WorkloadApiSource({ env: {} })).toThrow(expect.objectContaining({ code: 'WORKLOAD_API_NO_ENDPOINT' }));
    expect(() => new WorkloadApiSource({ env: { SPIFFE_ENDPOINT_SOCKET: 'tcp://example.org:1' } })).toThrow(expect.objectContaining({ code: 'WORKLOAD_API_BAD_ENDPOINT' }));
  });

  it('refuses impossible options with a coded error', () => {
    expect(() => new WorkloadApiSource({ endpoint: 'unix:///a.sock', startTimeoutMs: 0 })).toThrow(expect.objectContaining({ code: 'WORKLOAD_API_BAD_OPTION' }));
    expect(() => new WorkloadApiSource({ endpoint: 'unix:///a.sock', backoff: { initialMs: -1, stepMs: 1, maxMs: 2 } })).toThrow(expect.objectContaining({ code: 'BACKOFF_BAD_OPTIONS' }));
  });
});
