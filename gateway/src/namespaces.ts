import type { KubeClient } from "./kube.js";
import type { Log } from "./log.js";
import type { Placement } from "./remediation-request.js";
import type { GatewayConfig } from "./types.js";

interface NamespaceInfo {
  /** undefined: the API server could not tell (it was unreachable). */
  exists: boolean | undefined;
  environment: string | undefined;
  expiresAt: number;
}

/** Signals name arbitrary namespaces: the cache must not grow with them. */
const MAX_ENTRIES = 10_000;
/** A failed lookup is retried soon, not after the full cache TTL. */
const FAILED_LOOKUP_TTL_MS = 2_000;

/**
 * Namespace facts the pipeline needs per signal, cached (section 3):
 * the `environment` label and whether the namespace exists (placement, section 6).
 */
export class NamespaceDirectory {
  private readonly cache = new Map<string, NamespaceInfo>();
  private readonly inFlight = new Map<string, Promise<NamespaceInfo>>();

  constructor(
    private readonly kube: KubeClient,
    private readonly log: Log,
  ) {}

  /** The Namespace's `environment` label, else the configured override, else "unknown". */
  async environment(namespace: string, cfg: GatewayConfig): Promise<string> {
    const label = namespace ? (await this.lookup(namespace, cfg)).environment : undefined;
    return label || cfg.processing.environment.overrides[namespace] || "unknown";
  }

  /**
   * The signal's namespace when it exists; the fallback namespace for
   * cluster-scoped signals and namespaces that do not exist. When the API
   * server cannot tell, the signal's namespace is tried (the create decides).
   */
  async placement(namespace: string, cfg: GatewayConfig): Promise<Placement> {
    const fallback = cfg.namespaces.fallbackNamespace;
    if (!namespace) return { namespace: fallback, originNamespace: "" };
    const { exists } = await this.lookup(namespace, cfg);
    return exists === false && namespace !== fallback
      ? { namespace: fallback, originNamespace: namespace }
      : { namespace };
  }

  /** The API server said the namespace is gone (404 on create): stop placing requests there. */
  markMissing(namespace: string, cfg: GatewayConfig): void {
    this.remember(namespace, {
      exists: false,
      environment: undefined,
      expiresAt: Date.now() + cfg.processing.environment.cacheTtlMs,
    });
  }

  private async lookup(namespace: string, cfg: GatewayConfig): Promise<NamespaceInfo> {
    const cached = this.cache.get(namespace);
    if (cached && cached.expiresAt > Date.now()) return cached;
    // While the API server is known to be down, don't make every signal wait for it.
    if (!this.kube.healthy()) return cached ?? { exists: undefined, environment: undefined, expiresAt: 0 };
    let pending = this.inFlight.get(namespace);
    if (!pending) {
      pending = this.fetch(namespace, cfg.processing.environment.cacheTtlMs).finally(() =>
        this.inFlight.delete(namespace),
      );
      this.inFlight.set(namespace, pending);
    }
    return pending;
  }

  private async fetch(namespace: string, ttlMs: number): Promise<NamespaceInfo> {
    let info: NamespaceInfo;
    try {
      const labels = await this.kube.namespaceLabels(namespace);
      info = { exists: labels !== null, environment: labels?.environment, expiresAt: Date.now() + ttlMs };
    } catch (err) {
      this.log.warn(
        { namespace, err: (err as Error).message },
        "namespace lookup failed; environment falls back to overrides",
      );
      info = {
        exists: undefined,
        environment: undefined,
        expiresAt: Date.now() + Math.min(ttlMs, FAILED_LOOKUP_TTL_MS),
      };
    }
    this.remember(namespace, info);
    return info;
  }

  private remember(namespace: string, info: NamespaceInfo): void {
    this.cache.delete(namespace);
    if (this.cache.size >= MAX_ENTRIES) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(namespace, info);
  }
}
