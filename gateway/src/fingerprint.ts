import { createHash } from "node:crypto";

/**
 * Identity of a problem (section 3): lowercase hex SHA-256 of
 * `signalName:namespace:kind:name` (namespace "" for cluster-scoped resources).
 */
export function fingerprint(signalName: string, namespace: string, kind: string, name: string): string {
  return createHash("sha256").update(`${signalName}:${namespace}:${kind}:${name}`).digest("hex");
}
