import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../../harness/src/paths.js";
import { parseArgs, UsageError } from "../../src/cli.js";

const run = promisify(execFile);

async function gateway(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, ["--import", "tsx", "gateway/src/main.ts", ...args], {
      cwd: repoRoot,
      env: { ...process.env, GATEWAY_CONFIG: "", ...env },
      timeout: 30_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("parseArgs", () => {
  it("takes --config <file>, --config=<file> or GATEWAY_CONFIG", () => {
    expect(parseArgs(["--config", "a.yaml"], {})).toEqual({ help: false, configPath: "a.yaml" });
    expect(parseArgs(["--config=b.yaml"], {})).toEqual({ help: false, configPath: "b.yaml" });
    expect(parseArgs([], { GATEWAY_CONFIG: "c.yaml" })).toEqual({ help: false, configPath: "c.yaml" });
    expect(parseArgs(["--help"], {})).toEqual({ help: true });
  });

  it.each([
    [["--conifg", "a.yaml"], "unknown flag '--conifg'"],
    [["--config"], "flag '--config' needs a file path"],
    [["--config", "--help"], "flag '--config' needs a file path"],
    [["a.yaml"], "unexpected argument 'a.yaml'"],
    [[], "no configuration file: pass --config <file> or set GATEWAY_CONFIG"],
  ])("%j → %s", (argv, message) => {
    expect(() => parseArgs(argv, {})).toThrow(new UsageError(message));
  });
});

describe("gateway process start-up errors", () => {
  it("exits 2 with the usage on a bad flag", async () => {
    const res = await gateway(["--bogus"]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain("error: unknown flag '--bogus'");
    expect(res.stderr).toContain("usage: node --import tsx gateway/src/main.ts --config <file.yaml>");
  });

  it("exits 1 naming every invalid field, without a stack trace", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gw-cli-"));
    try {
      const file = join(dir, "gateway.yaml");
      writeFileSync(file, "processing:\n  deduplication:\n    ttl: 2s\nserver:\n  listenAdress: x\n");
      const res = await gateway(["--config", file]);
      expect(res.code).toBe(1);
      expect(res.stderr.trim().split("\n")).toEqual([
        "configuration error in 'server.listenAdress': unknown key; did you mean 'server.listenAddress'?",
        "configuration error in 'processing.deduplication.ttl': must be between 10s and 24h (got: 2s)",
      ]);
      const missing = await gateway(["--config", join(dir, "nope.yaml")]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(
        /^configuration error in '.*nope\.yaml': cannot read the configuration file \(ENOENT\)/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
