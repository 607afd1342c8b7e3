// Every failure meshlet reports carries a stable `code` (like undici's UND_ERR_*), so tests,
// logs, metrics and the one place that maps errors to client responses can match on it
// without parsing messages.
export class MeshletError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A bad command line: reported with the command's usage and exit status 2. */
export class UsageError extends MeshletError {
  constructor(message: string) {
    super('MESHLET_USAGE', message);
  }
}
