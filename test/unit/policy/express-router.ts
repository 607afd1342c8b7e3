/**
 * The handler an Express 4/5 app with default settings runs for a request, for the routes of
 * issue 11's app: `app.use('/admin', adminRouter)`, `app.all('/internal', …)`,
 * `app.get('/report', …)`, and a catch-all. Express defaults: "case sensitive routing" off
 * (paths compare without case), "strict routing" off (one trailing slash is optional),
 * `app.use` mounts match a path prefix segment-wise, and a GET route answers HEAD.
 * Handlers are named after the policy routes that are meant to govern them.
 */
export function expressDefaultHandler(method: string, path: string): 'admin' | 'internal' | 'report' | 'public' {
  const lower = path.toLowerCase();
  const p = lower.length > 1 && lower.endsWith('/') ? lower.slice(0, -1) : lower;
  if (p === '/admin' || p.startsWith('/admin/')) return 'admin';
  if (p === '/internal') return 'internal';
  if (p === '/report' && (method === 'GET' || method === 'HEAD')) return 'report';
  return 'public';
}

/** The documented-but-unsafe pattern of issue 11: close routes inside an open prefix. */
export function closedInsideOpenPolicy(pathMatching?: 'exact' | 'case-insensitive-trailing-slash', port = 8080): string {
  return `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  servers:
    - name: api
      selector: { serviceAccount: api }
${pathMatching ? `      pathMatching: ${pathMatching}\n` : ''}      ports: [{ port: ${port}, protocol: http }]
      routes:
        - name: public
          path: { prefix: / }
          callers: [{ anyAuthenticated: true }]
        - name: admin
          path: { prefix: /admin }
          callers: []
        - name: internal
          path: { exact: /internal }
          callers: []
        - name: report
          methods: [GET]
          path: { exact: /report }
          callers: [{ namespace: ops }]
`;
}
