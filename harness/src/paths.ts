import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root: harness/src/paths.ts is two levels below it. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Pinned third-party builds live here (ignored by git, built by `task setup`). */
export const toolsBin = join(repoRoot, ".tools", "bin");

let runDir: string | undefined;

/**
 * The folder where this run keeps component logs. One per test process, so
 * parallel workers and side-by-side stacks never share a log file.
 */
export function currentRunDir(): string {
  if (!runDir) {
    const base = process.env.HARNESS_RUN_DIR ?? join(repoRoot, "results", "harness");
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    runDir = join(base, `${stamp}-${process.pid}`);
    mkdirSync(runDir, { recursive: true });
  }
  return runDir;
}

/** A fresh scratch directory for a component's data (removed by the component on stop). */
export function scratchDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `gw-${prefix}-`));
}

/**
 * Path of a binary: a pinned build in .tools/bin, envtest assets
 * (KUBEBUILDER_ASSETS) for etcd/kube-apiserver, or a system package.
 */
export function binary(name: string): string {
  const candidates = [join(toolsBin, name)];
  if (process.env.KUBEBUILDER_ASSETS) candidates.unshift(join(process.env.KUBEBUILDER_ASSETS, name));
  for (const dir of (process.env.PATH ?? "").split(":")) if (dir) candidates.push(join(dir, name));
  for (const dir of ["/usr/bin", "/usr/sbin", "/usr/lib/postgresql/15/bin"]) candidates.push(join(dir, name));
  const found = candidates.find((c) => existsSync(c));
  if (!found)
    throw new Error(
      `binary '${name}' not found (looked in .tools/bin, KUBEBUILDER_ASSETS and PATH); run './taskw setup'`,
    );
  return found;
}
