import { cpSync, existsSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot, scratchDir } from "../paths.js";

/** One source edit: `find` must occur exactly once in `file` (relative to gateway/src). */
export interface SourceEdit {
  file: string;
  find: string;
  replace: string;
}

/**
 * A copy of the gateway with a protection removed, for showing that a suite
 * can fail: the shipped gateway has no switch for it. Each edit must match
 * exactly once, so a patch that no longer fits the source fails loudly
 * instead of silently testing the unpatched gateway.
 * Returns the copy's main.ts, for `new GatewayProcess().withMain(...)`.
 */
export function patchedGateway(name: string, edits: SourceEdit[]): string {
  if (edits.length === 0) throw new Error(`patchedGateway(${name}): no edits given`);
  const root = scratchDir(`patched-${name}`);
  cpSync(join(repoRoot, "gateway", "src"), join(root, "gateway", "src"), { recursive: true });
  // The copy resolves its packages and module type from the project.
  symlinkSync(join(repoRoot, "node_modules"), join(root, "node_modules"));
  cpSync(join(repoRoot, "package.json"), join(root, "package.json"));
  for (const edit of edits) {
    const path = join(root, "gateway", "src", edit.file);
    if (!existsSync(path)) throw new Error(`patchedGateway(${name}): no file gateway/src/${edit.file}`);
    const text = readFileSync(path, "utf8");
    const hits = text.split(edit.find).length - 1;
    if (hits !== 1)
      throw new Error(
        `patchedGateway(${name}): expected the text to patch exactly once in gateway/src/${edit.file}, found it ${hits} times: ${JSON.stringify(edit.find.slice(0, 80))}`,
      );
    writeFileSync(path, text.replace(edit.find, edit.replace));
  }
  return join(root, "gateway", "src", "main.ts");
}
