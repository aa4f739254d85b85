// Scenario 10: rate limiting under sustained load. The client over its limit gets
// 429 with Retry-After; another client at the same time sees no error and
// unchanged latency.
import { scenario } from "../src/dsl.js";
import { rateLimiting } from "../src/scenarios/rate-limiting.js";

scenario("10. an over-limit client gets 429 with Retry-After; another is unaffected", ({ given, when, then }) =>
  rateLimiting({ given, when, then }),
);
