/** Command-line flags of the gateway (`node --import tsx gateway/src/main.ts --config <file>`). */

export const USAGE = `usage: node --import tsx gateway/src/main.ts --config <file.yaml>

  --config <file>   configuration file (YAML); default: $GATEWAY_CONFIG
  --help            show this help`;

/** A command-line mistake: main prints it with the usage and exits 2. */
export class UsageError extends Error {}

export type CliArgs = { help: true } | { help: false; configPath: string };

export function parseArgs(argv: readonly string[], env: NodeJS.ProcessEnv): CliArgs {
  let configPath: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--help" || arg === "-h") return { help: true };
    const inline = arg.startsWith("--config=") ? arg.slice("--config=".length) : undefined;
    if (arg !== "--config" && inline === undefined) {
      throw new UsageError(arg.startsWith("-") ? `unknown flag '${arg}'` : `unexpected argument '${arg}'`);
    }
    const value = inline ?? argv[++i];
    if (!value || value.startsWith("--")) throw new UsageError("flag '--config' needs a file path");
    configPath = value;
  }
  configPath ??= env.GATEWAY_CONFIG;
  if (!configPath) throw new UsageError("no configuration file: pass --config <file> or set GATEWAY_CONFIG");
  return { help: false, configPath };
}
