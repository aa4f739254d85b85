// Embedded k6-compatible runner:
//   npx tsx load/runner/cli.ts run <script.ts> [-e KEY=VAL]... [--tag KEY=VAL]... [--summary-export FILE]
//       [-o experimental-prometheus-rw[=URL] | -o prometheus=URL] [-q|--quiet] [--progress]
import { register } from "node:module";
import { EXIT } from "./engine/errors.js";
import { type RunArgs, runTest } from "./engine/run.js";

const USAGE = `usage: cli.ts run <script.ts> [-e|--env KEY=VALUE]... [--tag KEY=VALUE]... [--summary-export FILE]
                  [-o|--out experimental-prometheus-rw[=URL] | prometheus=URL] [-q|--quiet] [--progress]`;

class UsageError extends Error {}

function keyValue(flag: string, value: string, into: Record<string, string>): void {
  const eq = value.indexOf("=");
  if (eq <= 0) throw new UsageError(`${flag} ${JSON.stringify(value)}: expected KEY=VALUE`);
  into[value.slice(0, eq)] = value.slice(eq + 1);
}

function parseArgs(argv: string[]): RunArgs {
  const [command, ...rest] = argv;
  if (command !== "run")
    throw new UsageError(command ? `unknown command ${JSON.stringify(command)}` : "missing command");
  const args: RunArgs = { scriptPath: "", env: {}, tags: {}, quiet: false, progress: false };
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] as string;
    const [flag, inline] =
      arg.startsWith("--") && arg.includes("=")
        ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
        : [arg, undefined];
    const value = () => {
      const v = inline ?? rest[++i];
      if (v === undefined) throw new UsageError(`${flag}: missing value`);
      return v;
    };
    switch (flag) {
      case "-e":
      case "--env":
        keyValue(flag, value(), args.env);
        break;
      case "--tag":
        keyValue(flag, value(), args.tags);
        break;
      case "--summary-export":
        args.summaryExport = value();
        break;
      case "-o":
      case "--out": {
        const out = value();
        const [name, target] = [out.split("=")[0], out.includes("=") ? out.slice(out.indexOf("=") + 1) : undefined];
        if (name !== "experimental-prometheus-rw" && name !== "prometheus") {
          throw new UsageError(
            `--out ${out}: supported outputs are experimental-prometheus-rw[=URL] and prometheus=URL`,
          );
        }
        args.remoteWrite = { url: target };
        break;
      }
      case "-q":
      case "--quiet":
        args.quiet = true;
        break;
      case "--progress":
        args.progress = true;
        break;
      default:
        if (flag.startsWith("-") || args.scriptPath) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`);
        args.scriptPath = arg;
    }
  }
  if (!args.scriptPath) throw new UsageError("missing script path");
  return args;
}

let args: RunArgs;
try {
  args = parseArgs(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  process.stderr.write(`error: ${err.message}\n${USAGE}\n`);
  process.exit(EXIT.usage);
}
register("./k6-resolve-hooks.ts", import.meta.url);
// Exit explicitly: keep-alive sockets and the request worker would otherwise hold the process open.
process.exit(await runTest(args));
