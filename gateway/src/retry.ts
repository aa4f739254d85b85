/** Capped exponential backoff (section 6: 3 attempts, 100 ms doubling, at most 5 s). */
export interface RetryPolicy {
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
}

/** Delay before attempt `attempt + 1` (attempt counts from 1). */
export function backoffDelay(policy: RetryPolicy, attempt: number): number {
  return Math.min(policy.initialBackoffMs * 2 ** (attempt - 1), policy.maxBackoffMs);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Resolves after `ms`, or early once `signal` aborts. */
function pause(ms: number, signal?: AbortSignal): Promise<void> {
  if (!signal) return sleep(ms);
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * Runs `call` until it succeeds, `retryable(err)` says no, the attempts are
 * used up or `signal` (the caller's deadline) aborts; rethrows the last error.
 * `onRetry` sees each error that is retried.
 */
export async function withRetry<T>(
  policy: RetryPolicy,
  call: (attempt: number) => Promise<T>,
  retryable: (err: unknown) => boolean,
  onRetry?: (err: unknown, attempt: number) => void,
  signal?: AbortSignal,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call(attempt);
    } catch (err) {
      if (attempt >= policy.maxAttempts || !retryable(err) || signal?.aborted) throw err;
      onRetry?.(err, attempt);
      await pause(backoffDelay(policy, attempt), signal);
      if (signal?.aborted) throw err;
    }
  }
}
