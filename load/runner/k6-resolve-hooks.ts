// Module resolve hook: a k6 script's `import http from "k6/http"` gets the embedded runner's
// implementation, so the same script file runs on real k6 and here.
import type { ResolveHook } from "node:module";

const MODULES: Record<string, string> = {
  k6: "./k6/index.ts",
  "k6/http": "./k6/http.ts",
  "k6/metrics": "./k6/metrics.ts",
  "k6/execution": "./k6/execution.ts",
};

export const resolve: ResolveHook = async (specifier, context, nextResolve) => {
  const target = MODULES[specifier];
  // Delegated so the TypeScript loader (tsx) resolves, and later transforms, the file as usual.
  if (target) return nextResolve(new URL(target, import.meta.url).href, context);
  if (specifier === "k6" || specifier.startsWith("k6/")) {
    throw new Error(
      `${specifier} is not provided by the embedded k6 runner (available: ${Object.keys(MODULES).join(", ")})`,
    );
  }
  if (/^https?:\/\//.test(specifier)) {
    throw new Error(
      `cannot import ${specifier}: the embedded runner does not fetch remote modules; keep a copy next to the script`,
    );
  }
  return nextResolve(specifier, context);
};
