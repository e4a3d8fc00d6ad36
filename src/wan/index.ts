export { type AddForwardOptions, WanEmulator } from "./emulator.js";
export {
  DEFAULT_MAX_QUEUED_BYTES,
  Forward,
  type ForwardOptions,
  type ForwardStats,
  type HostPort,
} from "./forward.js";
export {
  DEFAULT_RETRANSMIT_TIMEOUT_MS,
  Link,
  type LinkChange,
  type LinkChangeReason,
  type LinkDirection,
  type LinkOptions,
  type LinkSession,
  type LinkState,
  linkName,
  type Subscription,
} from "./link.js";
