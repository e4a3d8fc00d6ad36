/**
 * The audit of a ledger: every acknowledged write is read back (a) through a router, rotating over
 * the regions, with `x-ringfence-min-lsn` set to its commit LSN, and (b) straight from its cell's
 * current primary database, in one query per batch of entries. The primary is the authority: a write
 * missing there is lost, different content there (or through a router) is mismatched, and a router
 * that cannot show a write the primary has is a router read failure, reported apart from loss.
 */
import { HttpClient, header, type Target } from "./http.js";
import type { LedgerEntry } from "./ledger.js";

/** A stored user's content. */
export interface StoredUser {
  readonly name: string;
  readonly email: string;
}

/** The key of a write in `PrimaryReader` answers: `tenant`, a NUL, `id`. */
export function writeKey(tenant: string, id: string): string {
  return `${tenant}\u0000${id}`;
}

/** Reads writes straight from the current primary database of a cell (see primary.ts for PostgreSQL). */
export interface PrimaryReader {
  /**
   * The users among `keys` that the primary of `cell` holds, keyed by {@link writeKey}; absent keys
   * are not there. Rejects when the primary cannot be read (the entries are then "unverified").
   */
  read(
    cell: string,
    keys: readonly { readonly tenant: string; readonly id: string }[],
  ): Promise<Map<string, StoredUser>>;
}

export type FindingKind = "lost" | "mismatched" | "router-read-failure" | "unverified";

export interface Finding {
  readonly kind: FindingKind;
  readonly id: string;
  readonly tenant: string;
  readonly cell: string;
  readonly lsn: string;
  readonly ackAt: string;
  /** What was seen, e.g. `GET through eu-west: 404` or `primary has name "x"`. */
  readonly detail: string;
}

export interface CellAudit {
  readonly cell: string;
  checked: number;
  ok: number;
  /** Missing on the cell's primary. */
  lost: number;
  /** Different name or email on the primary or through a router. */
  mismatched: number;
  /** The primary has it, but the router read failed or answered 404. */
  routerReadFailures: number;
  /** The primary could not be read, so nothing is proven either way. */
  unverified: number;
}

export interface AuditReport {
  readonly checked: number;
  readonly ok: number;
  readonly lost: number;
  readonly mismatched: number;
  readonly routerReadFailures: number;
  readonly unverified: number;
  readonly byCell: readonly CellAudit[];
  /** Router read failures by the region of the router read through. */
  readonly routerReadFailuresByRegion: Readonly<Record<string, number>>;
  /** Up to `maxFindings` of each kind. */
  readonly findings: readonly Finding[];
  /** Whether nothing is lost, mismatched or unverified. */
  readonly passed: boolean;
}

export interface AuditOptions {
  readonly entries: readonly LedgerEntry[];
  /** Routers to read through, in turn. */
  readonly routers: readonly Target[];
  readonly primary: PrimaryReader;
  /** Per router read. Default 5,000. */
  readonly timeoutMs?: number;
  /** Entries per primary query. Default 500. */
  readonly batchSize?: number;
  /** Batches checked at once (each with up to 16 router reads in flight). Default 4. */
  readonly parallelBatches?: number;
  /** Findings kept per kind. Default 1,000. */
  readonly maxFindings?: number;
  readonly tenantHeader?: string;
  readonly tenantPathPrefix?: string;
  /** Called with the number of entries checked so far, after every batch. */
  readonly onChecked?: (checked: number) => void;
  /** Default: a client of its own, closed at the end. */
  readonly client?: HttpClient;
}

const ROUTER_READS_PER_BATCH = 16;

type RouterVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly mismatch: boolean; readonly detail: string; readonly region: string };

/** Audits every entry; resolves with the report (it never rejects for what it finds). */
export async function auditLedger(options: AuditOptions): Promise<AuditReport> {
  if (options.routers.length === 0) throw new RangeError("an audit needs at least one router");
  const client = options.client ?? new HttpClient({ maxSocketsPerRouter: 64 });
  const batchSize = options.batchSize ?? 500;
  const maxFindings = options.maxFindings ?? 1_000;
  const tenantHeader = options.tenantHeader ?? "x-tenant";
  const cells = new Map<string, CellAudit>();
  const findings: Finding[] = [];
  const kept = new Map<FindingKind, number>();
  const failuresByRegion = new Map<string, number>();
  let checked = 0;

  const cellAudit = (cell: string): CellAudit => {
    let audit = cells.get(cell);
    if (!audit) {
      audit = { cell, checked: 0, ok: 0, lost: 0, mismatched: 0, routerReadFailures: 0, unverified: 0 };
      cells.set(cell, audit);
    }
    return audit;
  };
  const find = (kind: FindingKind, entry: LedgerEntry, detail: string) => {
    const n = kept.get(kind) ?? 0;
    if (n >= maxFindings) return;
    kept.set(kind, n + 1);
    const { id, tenant, cell, lsn, ackAt } = entry;
    findings.push({ kind, id, tenant, cell, lsn, ackAt, detail });
  };

  const readThroughRouter = async (entry: LedgerEntry, router: Target): Promise<RouterVerdict> => {
    const prefix = options.tenantPathPrefix
      ? `${options.tenantPathPrefix}${encodeURIComponent(entry.tenant)}`
      : "";
    const result = await client.send({
      target: router,
      method: "GET",
      path: `${prefix}/users/${encodeURIComponent(entry.id)}`,
      headers: { "x-tenant": entry.tenant, [tenantHeader]: entry.tenant, "x-ringfence-min-lsn": entry.lsn },
      timeoutMs: options.timeoutMs ?? 5_000,
    });
    const via = `GET through ${router.region}`;
    if (result.kind === "failure")
      return {
        ok: false,
        mismatch: false,
        region: router.region,
        detail: `${via}: ${result.errorClass} (${result.message})`,
      };
    if (result.status !== 200)
      return { ok: false, mismatch: false, region: router.region, detail: `${via}: HTTP ${result.status}` };
    let user: { name?: unknown; email?: unknown } | undefined;
    try {
      user = (JSON.parse(result.body) as { user?: { name?: unknown; email?: unknown } }).user;
    } catch {
      return { ok: false, mismatch: false, region: router.region, detail: `${via}: the answer is not JSON` };
    }
    if (user?.name === entry.name && user?.email === entry.email) return { ok: true };
    const servedBy = header(result.headers, "x-ringfence-served-by") ?? "?";
    return {
      ok: false,
      mismatch: true,
      region: router.region,
      detail: `${via} (served by ${servedBy}): name ${JSON.stringify(user?.name)}, email ${JSON.stringify(user?.email)}`,
    };
  };

  const checkBatch = async (batch: readonly { entry: LedgerEntry; index: number }[]): Promise<void> => {
    const cell = (batch[0] as { entry: LedgerEntry }).entry.cell;
    const primaryRead = options.primary
      .read(
        cell,
        batch.map(({ entry }) => ({ tenant: entry.tenant, id: entry.id })),
      )
      .then(
        (rows) => ({ rows }),
        (error: unknown) => ({ error: error as Error }),
      );
    const routerVerdicts = await mapLimit(batch, ROUTER_READS_PER_BATCH, ({ entry, index }) =>
      readThroughRouter(entry, options.routers[index % options.routers.length] as Target),
    );
    const primary = await primaryRead;
    const audit = cellAudit(cell);
    batch.forEach(({ entry }, i) => {
      audit.checked++;
      const router = routerVerdicts[i] as RouterVerdict;
      if ("error" in primary) {
        audit.unverified++;
        find("unverified", entry, `the primary of ${cell} could not be read: ${primary.error.message}`);
        return;
      }
      const stored = primary.rows.get(writeKey(entry.tenant, entry.id));
      if (!stored) {
        audit.lost++;
        find("lost", entry, `not on the primary of ${cell}${router.ok ? " (a router still shows it)" : ""}`);
      } else if (stored.name !== entry.name || stored.email !== entry.email) {
        audit.mismatched++;
        find(
          "mismatched",
          entry,
          `the primary has name ${JSON.stringify(stored.name)}, email ${JSON.stringify(stored.email)}`,
        );
      } else if (!router.ok && router.mismatch) {
        audit.mismatched++;
        find("mismatched", entry, router.detail);
      } else if (!router.ok) {
        audit.routerReadFailures++;
        failuresByRegion.set(router.region, (failuresByRegion.get(router.region) ?? 0) + 1);
        find("router-read-failure", entry, router.detail);
      } else {
        audit.ok++;
      }
    });
    checked += batch.length;
    options.onChecked?.(checked);
  };

  // Batches hold entries of one cell, so each needs one primary query.
  const byCell = new Map<string, { entry: LedgerEntry; index: number }[]>();
  options.entries.forEach((entry, index) => {
    let list = byCell.get(entry.cell);
    if (!list) {
      list = [];
      byCell.set(entry.cell, list);
    }
    list.push({ entry, index });
  });
  const batches: { entry: LedgerEntry; index: number }[][] = [];
  for (const list of byCell.values()) {
    for (let i = 0; i < list.length; i += batchSize) batches.push(list.slice(i, i + batchSize));
  }
  try {
    await mapLimit(batches, options.parallelBatches ?? 4, checkBatch);
  } finally {
    if (!options.client) client.close();
  }

  const byCellReport = [...cells.values()].sort((a, b) =>
    a.cell.localeCompare(b.cell, "en", { numeric: true }),
  );
  const sum = (k: keyof Omit<CellAudit, "cell">) => byCellReport.reduce((n, c) => n + c[k], 0);
  const report = {
    checked: sum("checked"),
    ok: sum("ok"),
    lost: sum("lost"),
    mismatched: sum("mismatched"),
    routerReadFailures: sum("routerReadFailures"),
    unverified: sum("unverified"),
    byCell: byCellReport,
    routerReadFailuresByRegion: Object.fromEntries(
      [...failuresByRegion].sort(([a], [b]) => a.localeCompare(b)),
    ),
    findings,
  };
  return { ...report, passed: report.lost === 0 && report.mismatched === 0 && report.unverified === 0 };
}

/** `items.map(fn)` with at most `limit` calls in flight, results in order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
