/**
 * Which standby to promote, and whether doing so provably loses no acknowledged commit. Pure.
 *
 * With `synchronous_standby_names = 'ANY k (s1 … sn)'`, a commit is acknowledged only once k of the
 * n named standbys have flushed it. WAL is one sequence, so the standby with the highest flushed
 * position holds everything any answering standby holds. If at least n − k + 1 of the named standbys
 * answer with their flushed position, every acknowledged commit is on one of them (at most k − 1
 * could be missing), so promoting the highest loses nothing. Otherwise it is still provable when
 * the old primary confirmed its own flushed position and the best standby has reached it: a
 * position it reported once every writer endpoint of the cell was fenced, so that no commit could
 * follow it and every acknowledged commit lies at or before it (controller/fence-proof.ts).
 * Anything else waits for an operator, with an estimate of what may be lost (see estimate.ts).
 */
import { formatLsn } from "../lib/lsn.js";

/** A standby of the cell as the controller last heard of it. */
export interface StandbyPosition {
  /** Its `application_name`, as `synchronous_standby_names` names it. */
  readonly name: string;
  readonly region: string;
  /** Its flushed (received) WAL position, when it answered since the primary failed. */
  readonly flushLsn: bigint | undefined;
}

/** The quorum the old primary committed with: `ANY k (names)`; k = 0 means asynchronous commit. */
export interface Quorum {
  readonly k: number;
  readonly names: readonly string[];
}

export interface DecisionInput {
  readonly quorum: Quorum;
  readonly standbys: readonly StandbyPosition[];
  /**
   * The old primary's flushed position, only when it was read after every writer of the cell was
   * fenced (no commit can follow it); undefined when the old primary is gone or not yet confirmed.
   */
  readonly oldPrimaryFlush?: bigint | undefined;
  /** Regions in order of preference when two standbys are equally far ahead. */
  readonly preference: readonly string[];
}

export type Decision =
  | {
      readonly kind: "promote";
      readonly target: StandbyPosition & { readonly flushLsn: bigint };
      /** What proves it: the standbys of the quorum, or the fenced old primary's own position. */
      readonly basis: "quorum" | "old-primary";
      /** Why no acknowledged commit can be lost. */
      readonly proof: string;
    }
  | {
      readonly kind: "await-consent";
      readonly target: StandbyPosition & { readonly flushLsn: bigint };
      /** Why zero loss cannot be proven. */
      readonly reason: string;
    }
  | { readonly kind: "no-candidate"; readonly reason: string };

/** Decides the failover of one cell. */
export function decideFailover(input: DecisionInput): Decision {
  const answered = input.standbys.filter(
    (s): s is StandbyPosition & { flushLsn: bigint } => s.flushLsn !== undefined,
  );
  if (answered.length === 0) {
    return { kind: "no-candidate", reason: "no standby of the cell answered with its position" };
  }
  const rank = (region: string) => {
    const i = input.preference.indexOf(region);
    return i < 0 ? Number.MAX_SAFE_INTEGER : i;
  };
  const target = answered.reduce((best, s) =>
    s.flushLsn > best.flushLsn || (s.flushLsn === best.flushLsn && rank(s.region) < rank(best.region))
      ? s
      : best,
  );
  const { k, names } = input.quorum;
  const answeredNamed = answered.filter((s) => names.includes(s.name)).length;
  const needed = names.length - k + 1;
  if (k > 0 && answeredNamed >= needed) {
    return {
      kind: "promote",
      target,
      basis: "quorum",
      proof: `${answeredNamed} of the ${names.length} quorum standbys answered (ANY ${k} needs ${needed}): every acknowledged commit is on one of them`,
    };
  }
  if (input.oldPrimaryFlush !== undefined && target.flushLsn >= input.oldPrimaryFlush) {
    return {
      kind: "promote",
      target,
      basis: "old-primary",
      proof: `the fenced old primary confirmed its flushed position (${formatLsn(input.oldPrimaryFlush)}) and the standby has reached it`,
    };
  }
  const missing = names.filter((n) => !answered.some((s) => s.name === n));
  return {
    kind: "await-consent",
    target,
    reason:
      k === 0
        ? "the old primary was committing asynchronously and could not confirm its position"
        : `only ${answeredNamed} of the ${names.length} quorum standbys answered (ANY ${k} needs ${needed}); ${missing.join(", ")} did not, and the old primary could not confirm its position`,
  };
}

/** Parses `ANY k ("a", "b")`, `FIRST k (…)`, `k (…)` or a bare list; empty means asynchronous. */
export function parseQuorum(setting: string | null | undefined): Quorum {
  const text = (setting ?? "").trim();
  if (text === "") return { k: 0, names: [] };
  const m = /^(?:(ANY|FIRST)\s+)?(?:(\d+)\s*\()?(.*?)\)?$/i.exec(text);
  const list = (m?.[3] ?? text)
    .split(",")
    .map((n) => n.trim().replace(/^"(.*)"$/, "$1"))
    .filter((n) => n !== "");
  return { k: m?.[2] === undefined ? Math.min(1, list.length) : Number(m[2]), names: list };
}
