// Scenario 6: graceful shutdown with requests in flight. SIGTERM under load:
// readiness 503 while it still serves, every request answered 2xx (accounted
// for) or refused retryably, none lost, exit code 0.
import { scenario } from "../src/dsl.js";
import { gracefulShutdown } from "../src/scenarios/graceful-shutdown.js";

scenario("6. SIGTERM under load: none lost, readiness 503 during the drain, exit 0", ({ given, when, then }) =>
  gracefulShutdown({ given, when, then }),
);
