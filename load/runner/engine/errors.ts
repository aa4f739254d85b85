// Exit codes follow k6 (errext/exitcodes), so CI wrappers treat both runners alike.
export const EXIT = {
  ok: 0,
  thresholdsFailed: 99,
  setupTimeout: 100,
  teardownTimeout: 101,
  invalidConfig: 104,
  externalAbort: 105,
  scriptException: 107,
  scriptAborted: 108,
  markedAsFailed: 110,
  usage: 255,
} as const;

/** An error that ends the run with a specific exit code; its message is shown without a stack trace. */
export class RunnerError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = "RunnerError";
  }
}

export function configError(message: string): RunnerError {
  return new RunnerError(message, EXIT.invalidConfig);
}

/** Ends the calling iteration after exec.test.abort(); not reported as a script error. */
export class IterationAborted extends Error {}
