import { createHash } from "node:crypto";
import { AuthenticationV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { FastifyInstance } from "fastify";
import { ProblemError } from "./types.js";

/** Answers whether a bearer token is valid; throws when it cannot tell. */
export type TokenReviewer = (token: string) => Promise<boolean>;

/** A reviewer backed by the Kubernetes TokenReview API, bounded in time. */
export function kubernetesTokenReviewer(kc: KubeConfig, timeoutMs: number): TokenReviewer {
  const api = kc.makeApiClient(AuthenticationV1Api);
  return async (token) => {
    const review = api.createTokenReview({
      body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } },
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`TokenReview did not answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const result = await Promise.race([review, timeout]);
      return result.status?.authenticated === true;
    } finally {
      clearTimeout(timer);
    }
  };
}

/**
 * Caches answers for a short TTL (keyed by the token's hash, never the token)
 * and shares one in-flight review among concurrent requests with the same
 * token. Failed reviews are not cached.
 */
export class CachedTokenReviewer {
  private readonly cache = new Map<string, { valid: boolean; expiresAt: number }>();
  private readonly pending = new Map<string, Promise<boolean>>();

  constructor(
    private readonly review: TokenReviewer,
    private readonly ttlMs: () => number,
    private readonly maxEntries = 1000,
    private readonly now: () => number = Date.now,
  ) {}

  async isValid(token: string): Promise<boolean> {
    const key = createHash("sha256").update(token).digest("hex");
    const hit = this.cache.get(key);
    if (hit && hit.expiresAt > this.now()) return hit.valid;
    const shared = this.pending.get(key);
    if (shared) return shared;
    const review = this.review(token)
      .then((valid) => {
        this.remember(key, valid);
        return valid;
      })
      .finally(() => this.pending.delete(key));
    this.pending.set(key, review);
    return review;
  }

  private remember(key: string, valid: boolean): void {
    this.cache.delete(key);
    if (this.cache.size >= this.maxEntries) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(key, { valid, expiresAt: this.now() + this.ttlMs() });
  }
}

const BEARER = /^Bearer +(\S+) *$/i;

/** onRequest hook: 401 without a valid bearer token, 503 when the review itself fails. */
export function installBearerAuth(app: FastifyInstance, reviewer: CachedTokenReviewer): void {
  app.addHook("onRequest", async (request) => {
    const header = request.headers.authorization;
    if (!header) throw new ProblemError(401, "missing bearer token: send 'Authorization: Bearer <token>'");
    const token = BEARER.exec(header)?.[1];
    if (!token) throw new ProblemError(401, "the Authorization header must use the Bearer scheme");
    let valid: boolean;
    try {
      valid = await reviewer.isValid(token);
    } catch (err) {
      request.log.error({ err }, "TokenReview call to the Kubernetes API failed");
      throw new ProblemError(503, "authentication is unavailable (the token review failed); retry later", 5);
    }
    if (!valid) throw new ProblemError(401, "the bearer token was not accepted by the Kubernetes TokenReview");
  });
}
