/** Options for {@link eventually}. */
export interface PollOptions {
  /** What is being waited for, in words; used in the failure message. */
  what: string;
  timeoutMs?: number;
  intervalMs?: number;
}

function describe(value: unknown): string {
  if (value instanceof Error) return value.message;
  try {
    const text = JSON.stringify(value);
    return text && text.length > 500 ? `${text.slice(0, 500)}…` : String(text);
  } catch {
    return String(value);
  }
}

/**
 * Polls `check` until it returns without throwing (and, when it returns a
 * boolean, returns true). Fails after the deadline with what it last saw, so
 * a failing test explains itself. Never used as a sleep: it stops as soon as
 * the condition holds.
 */
export async function eventually<T>(check: () => Promise<T> | T, opts: PollOptions): Promise<Exclude<T, false>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let last: unknown = "nothing yet";
  for (;;) {
    try {
      const value = await check();
      if (value !== false) return value as Exclude<T, false>;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what}; last saw: ${describe(last)}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Options for {@link untilSettled}. */
export interface SettleOptions {
  /** Give up once the samples have not changed for this long: the work stopped converging. */
  stallMs: number;
  /** Give up at this age whatever happens: every wait is bounded. */
  maxMs: number;
  /** First interval between samples; it doubles up to `maxIntervalMs`, sparing an expensive source. */
  intervalMs?: number;
  maxIntervalMs?: number;
}

/**
 * Samples until `done(sample)` holds, for work that drains at its own pace
 * (how long depends on the run, not on a guess): keeps waiting while the
 * samples keep changing, gives up when they stall or at `maxMs`. Returns the
 * last sample either way, so the caller can report what it saw. A failing
 * sample is retried; if none ever succeeded, the last error is thrown.
 */
export async function untilSettled<T>(
  sample: () => Promise<T>,
  done: (value: T) => boolean,
  opts: SettleOptions,
): Promise<T> {
  const started = Date.now();
  let interval = opts.intervalMs ?? 1000;
  let seen: { value: T } | undefined;
  let error: unknown;
  let fingerprint = "";
  let changedAt = started;
  for (;;) {
    try {
      const value = await sample();
      seen = { value };
      if (done(value)) return value;
      const now = JSON.stringify(value);
      if (now !== fingerprint) {
        fingerprint = now;
        changedAt = Date.now();
      }
    } catch (err) {
      error = err;
    }
    const at = Date.now();
    if (at - changedAt >= opts.stallMs || at - started >= opts.maxMs) {
      if (seen) return seen.value;
      throw error;
    }
    await new Promise((r) => setTimeout(r, interval));
    interval = Math.min(interval * 2, opts.maxIntervalMs ?? 5000);
  }
}
