/** The router's pure decision policies: tenant parsing, retries, ejection, balancing, shedding, hedging. */
export {
  type BackoffOptions,
  parseHttpDate,
  parseRetryAfter,
  type RetryAfterOptions,
  retryDelayMs,
} from "./backoff.js";
export { type BalancedUpstream, chooseUpstream, Rotation } from "./balancer.js";
export {
  type HedgeRoute,
  hedgeDelayMs,
  LatencyTracker,
  type LatencyTrackerOptions,
  shouldHedge,
} from "./latency.js";
export {
  DEFAULT_POOL,
  type Disposable,
  type EjectionEvent,
  type EjectionReason,
  OutlierDetector,
  type OutlierOptions,
  type OutlierStats,
  type ReturnEvent,
  type UpstreamOutlierState,
} from "./outlier.js";
export { RetryBudget, type RetryBudgetOptions, type RetryBudgetStats } from "./retry-budget.js";
export { LoadShedder, type LoadShedderOptions, type ShedderKeyStats } from "./shedder.js";
export {
  DEFAULT_TENANT_HEADER,
  type HeaderValue,
  isValidTenant,
  MAX_TENANT_LENGTH,
  parseTenant,
  type TenantErrorCode,
  type TenantInput,
  type TenantOptions,
  type TenantResult,
} from "./tenant.js";
