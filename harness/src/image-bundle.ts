import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./paths.js";

/**
 * Runs the esbuild step of gateway/Dockerfile that writes `dist/<file>`, exactly as the image
 * build runs it but with its output in `dir`, and returns the bundle's path: the image's own
 * entry points (the gateway, the stand-ins, Data Storage), tested without a Docker engine.
 */
export function bundleAsTheImage(file: string, dir: string): string {
  const dockerfile = readFileSync(join(repoRoot, "gateway", "Dockerfile"), "utf8").replace(/\\\n\s*/g, "");
  const outfile = `--outfile=dist/${file}`;
  const run = dockerfile.split("\n").find((l) => l.startsWith("RUN npx esbuild") && l.includes(outfile));
  if (!run) throw new Error(`gateway/Dockerfile has no esbuild RUN writing dist/${file}`);
  const out = join(dir, file);
  execFileSync("sh", ["-c", run.slice("RUN ".length).replace(outfile, `--outfile=${out}`)], {
    cwd: repoRoot,
    stdio: "pipe",
  });
  return out;
}
