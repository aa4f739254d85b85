import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../../harness/src/paths.js";
import { withReference } from "../../src/config-reference.js";
import { CONFIG_FIELDS } from "../../src/config-schema.js";

describe("configuration reference in the README", () => {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");

  it("is what the schema generates (refresh: ./taskw docs)", () => {
    expect(readme).toBe(withReference(readme));
  });

  it("lists every setting", () => {
    for (const field of CONFIG_FIELDS) expect(readme).toContain(`\`${field.path}\``);
  });
});
