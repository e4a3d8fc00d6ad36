/**
 * How long to wait before a retry: full-jitter exponential backoff (AWS's "full jitter": uniform in
 * [0, min(max, base·2^attempt)]), which spreads synchronized clients apart, and the server's own
 * `Retry-After` answer when it gives one. Pure functions; the random source is injected.
 */

/** Options of {@link retryDelayMs}. Pass one constant object rather than a fresh one per call. */
export interface BackoffOptions {
  /** The ceiling of the first retry's delay, in ms. Default 25. */
  readonly baseMs?: number;
  /** The largest ceiling, whatever the attempt, in ms. Default 250. */
  readonly maxMs?: number;
  /** A uniform random number in [0, 1). Default `Math.random`. */
  readonly random?: () => number;
}

/** Options of {@link parseRetryAfter}. */
export interface RetryAfterOptions {
  /** The longest wait honoured, in ms; longer answers are cut to it. Default 10 000 (10 s). */
  readonly maxMs?: number;
}

const NO_OPTIONS: BackoffOptions & RetryAfterOptions = Object.freeze({});

/**
 * The delay before retry number `attempt` (0 for the first retry), in whole ms, uniform in
 * [0, min(maxMs, baseMs·2^attempt)]. Defaults: baseMs 25, maxMs 250, random `Math.random`;
 * throws a `RangeError` when baseMs or maxMs is negative or not a number.
 */
export function retryDelayMs(attempt: number, options: BackoffOptions = NO_OPTIONS): number {
  const baseMs = options.baseMs ?? 25;
  const maxMs = options.maxMs ?? 250;
  if (!(baseMs >= 0) || !(maxMs >= 0)) {
    throw new RangeError(`retryDelayMs: baseMs and maxMs must be numbers ≥ 0; got ${baseMs} and ${maxMs}`);
  }
  const n = attempt > 0 ? attempt : 0; // negative or NaN attempts count as the first
  const exp = baseMs * 2 ** n; // Infinity for huge attempts, which the min() absorbs
  const ceiling = Math.floor(exp < maxMs ? exp : maxMs);
  if (!Number.isFinite(ceiling)) {
    throw new RangeError(`retryDelayMs: maxMs must be finite when attempts grow; got ${maxMs}`);
  }
  const r = (options.random ?? Math.random)();
  const delay = Math.floor(r * (ceiling + 1));
  // A misbehaving random source (1, negative, NaN) still yields a delay in range.
  return delay >= 0 ? (delay <= ceiling ? delay : ceiling) : 0;
}

const DELTA_SECONDS = /^[0-9]+$/;
const DAYS = "(Mon|Tue|Wed|Thu|Fri|Sat|Sun)";
const LONG_DAYS = "(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)";
const MONTHS = "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)";
const TIME = "([0-9]{2}):([0-9]{2}):([0-9]{2})";
// The three date forms RFC 9110 §5.6.7 obliges recipients to accept.
const IMF_FIXDATE = new RegExp(`^${DAYS}, ([0-9]{2}) ${MONTHS} ([0-9]{4}) ${TIME} GMT$`);
const RFC850_DATE = new RegExp(`^${LONG_DAYS}, ([0-9]{2})-${MONTHS}-([0-9]{2}) ${TIME} GMT$`);
const ASCTIME_DATE = new RegExp(`^${DAYS} ${MONTHS} ([ 0-9][0-9]) ${TIME} ([0-9]{4})$`);
const MONTH_INDEX: Readonly<Record<string, number>> = {
  Jan: 0,
  Feb: 1,
  Mar: 2,
  Apr: 3,
  May: 4,
  Jun: 5,
  Jul: 6,
  Aug: 7,
  Sep: 8,
  Oct: 9,
  Nov: 10,
  Dec: 11,
};
// Longer than any valid form ("Wednesday, 09-Nov-94 08:49:37 GMT" is 33): junk is dropped at once.
const MAX_LENGTH = 40;

/**
 * How long a `Retry-After` header asks the client to wait, in ms from `nowMs` (epoch ms): delay
 * seconds (`"120"`) or an HTTP date in any of the three RFC 9110 forms. Answers are capped at
 * `options.maxMs` (default 10 s); a date in the past gives 0; junk, or no header, gives undefined.
 */
export function parseRetryAfter(
  value: string | readonly string[] | undefined,
  nowMs: number,
  options: RetryAfterOptions = NO_OPTIONS,
): number | undefined {
  const maxMs = options.maxMs ?? 10_000;
  const raw = typeof value === "string" ? value : Array.isArray(value) ? value[0] : undefined;
  if (typeof raw !== "string" || raw.length > MAX_LENGTH) return undefined;
  const text = raw.trim();
  let ms: number | undefined;
  if (DELTA_SECONDS.test(text)) ms = Number(text) * 1000;
  else {
    const at = parseHttpDate(text, nowMs);
    if (at === undefined) return undefined;
    ms = at - nowMs;
  }
  if (!(ms > 0)) return 0; // also a date when the clock is NaN: retry now rather than guess
  return ms < maxMs ? ms : maxMs;
}

/** Parses an HTTP date (IMF-fixdate, RFC 850 or asctime) into epoch ms, or undefined when it is not one. */
export function parseHttpDate(text: string, nowMs: number = Date.now()): number | undefined {
  let m = IMF_FIXDATE.exec(text);
  if (m) return utc(Number(m[4]), m[3], m[2], m[5], m[6], m[7]);
  m = RFC850_DATE.exec(text);
  if (m) {
    // RFC 9110: a two-digit year that looks more than 50 years ahead is in the previous century.
    const yy = Number(m[4]);
    const nowYear = Number.isFinite(nowMs) ? new Date(nowMs).getUTCFullYear() : 2000;
    let year = Math.floor(nowYear / 100) * 100 + yy;
    if (year > nowYear + 50) year -= 100;
    return utc(year, m[3], m[2], m[5], m[6], m[7]);
  }
  m = ASCTIME_DATE.exec(text);
  if (m) return utc(Number(m[7]), m[2], m[3]?.trim(), m[4], m[5], m[6]);
  return undefined;
}

function utc(
  year: number,
  month: string | undefined,
  day: string | undefined,
  hh: string | undefined,
  mm: string | undefined,
  ss: string | undefined,
): number | undefined {
  const mon = MONTH_INDEX[month ?? ""];
  const d = Number(day);
  const h = Number(hh);
  const mi = Number(mm);
  const s = Number(ss);
  if (mon === undefined || h > 23 || mi > 59 || s > 60) return undefined;
  // Date.UTC rolls 31 Feb over into March; a real date survives the round trip. The weekday is
  // redundant and not checked: a server that gets it wrong still means the date.
  const ms = Date.UTC(year, mon, d, h, mi, Math.min(s, 59));
  const date = new Date(ms);
  if (date.getUTCDate() !== d || date.getUTCMonth() !== mon) return undefined;
  return ms;
}
