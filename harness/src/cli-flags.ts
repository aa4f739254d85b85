/** A command-line mistake: the entry points print it with their usage and exit 2. */
export class UsageError extends Error {}

/** One `--flag value`: the pattern its value must match, that pattern in words, and what to do with it. */
export type FlagSpec = [pattern: RegExp, meaning: string, apply: (value: string) => void];

/**
 * Parses `--flag value` pairs before anything starts: an unknown flag, a missing value or one that
 * does not match gets a UsageError naming the flag and what it must be.
 */
export function parseFlags(args: string[], flags: Record<string, FlagSpec>): void {
  for (let i = 0; i < args.length; i++) {
    const flag = args[i] as string;
    const spec = flags[flag];
    if (!spec) throw new UsageError(`unknown flag '${flag}'`);
    const value = args[++i];
    if (value === undefined || value === "") throw new UsageError(`${flag}: missing value`);
    if (!spec[0].test(value)) throw new UsageError(`${flag}: must be ${spec[1]} (got: ${value})`);
    spec[2](value);
  }
}

/** Runs a suite's CLI: its exit code, or 2 with the message and the usage for a bad flag. */
export async function runCli(main: () => Promise<number>, usage: string): Promise<void> {
  try {
    process.exitCode = await main();
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`error: ${err.message}\n${usage}\n`);
    process.exitCode = 2;
  }
}
