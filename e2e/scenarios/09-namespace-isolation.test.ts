// Scenario 9: namespace isolation with bearer auth on (TokenReview at the real API server):
// signals for one namespace never create or touch requests in another; denied namespaces
// get 403, missing or forged tokens 401; node-scoped signals go to the fallback namespace.
import { scenario } from "../src/dsl.js";
import { namespaceIsolation } from "../src/scenarios/namespace-isolation.js";

scenario("9. signals stay in their namespace; denied namespaces and bad tokens are refused", ({ given, when, then }) =>
  namespaceIsolation({ given, when, then }),
);
