import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultBucketTable } from "../topology/placement.js";
import { auditLedger, mapLimit, writeKey } from "./audit.js";
import { userContent } from "./generator.js";
import type { LedgerEntry } from "./ledger.js";
import { cellOf, chooseTenants } from "./tenants.js";
import { startFakeDirectory } from "./testing.js";

const table = defaultBucketTable(1024, 4);
const tenants = chooseTenants({ count: 8, table });

/** Writes `n` users straight into the fake and returns their ledger entries. */
function seed(fake: Awaited<ReturnType<typeof startFakeDirectory>>, n: number): LedgerEntry[] {
  return Array.from({ length: n }, (_, i) => {
    const t = tenants[i % tenants.length] as (typeof tenants)[number];
    const id = `w-a-${i}`;
    const lsn = `0/${(0x100 + i).toString(16)}`;
    fake.users.set(writeKey(t.tenant, id), { tenant: t.tenant, id, lsn, ...userContent(id) });
    return {
      id,
      tenant: t.tenant,
      cell: t.cell,
      ...userContent(id),
      lsn,
      router: "us-east",
      servedBy: null,
      ackAt: new Date().toISOString(),
    };
  });
}

test("the audit tells lost, mismatched, router read failures and unverified writes apart, per cell", async () => {
  const fake = await startFakeDirectory({ regions: ["us-east", "eu-west"], cellOf: (t) => cellOf(t, table) });
  try {
    const entries = seed(fake, 40);
    const [lost, changed] = [entries[0], entries[1]] as [LedgerEntry, LedgerEntry];
    fake.users.delete(writeKey(lost.tenant, lost.id));
    fake.users.set(writeKey(changed.tenant, changed.id), {
      ...(fake.users.get(writeKey(changed.tenant, changed.id)) as NonNullable<
        ReturnType<typeof fake.users.get>
      >),
      email: "someone-else@example.com",
    });
    fake.failReadsIn.add("eu-west"); // every second entry is read through eu-west
    const report = await auditLedger({ entries, routers: fake.routers, primary: fake.primary, batchSize: 7 });
    assert.equal(report.checked, 40);
    assert.equal(report.lost, 1);
    assert.equal(report.mismatched, 1);
    // Entries 1, 3, 5 … go through eu-west; entry 1 is already counted as mismatched.
    assert.equal(report.routerReadFailures, 19);
    assert.deepEqual(report.routerReadFailuresByRegion, { "eu-west": 19 });
    assert.equal(report.unverified, 0);
    assert.equal(report.ok, 40 - 1 - 1 - 19);
    assert.equal(report.passed, false);
    const byKind = (k: string) => report.findings.filter((f) => f.kind === k);
    assert.equal(byKind("lost")[0]?.id, lost.id);
    assert.match(byKind("mismatched")[0]?.detail ?? "", /someone-else/);
    assert.match(byKind("router-read-failure")[0]?.detail ?? "", /GET through eu-west: HTTP 503/);
    const lostCell = report.byCell.find((c) => c.cell === lost.cell);
    assert.equal(lostCell?.lost, 1);
    assert.equal(
      report.byCell.reduce((n, c) => n + c.checked, 0),
      40,
    );
  } finally {
    await fake.close();
  }
});

test("router read failures alone pass; a primary that cannot be read leaves writes unverified and fails", async () => {
  const fake = await startFakeDirectory({ regions: ["us-east"], cellOf: (t) => cellOf(t, table) });
  try {
    const entries = seed(fake, 10);
    fake.failReadsIn.add("us-east");
    const routersDown = await auditLedger({ entries, routers: fake.routers, primary: fake.primary });
    assert.equal(routersDown.routerReadFailures, 10);
    assert.equal(routersDown.passed, true);

    const broken = await auditLedger({
      entries,
      routers: fake.routers,
      primary: {
        read: async (cell, keys) => {
          if (cell === "cell-2") throw new Error("connection refused");
          return fake.primary.read(cell, keys);
        },
      },
    });
    const cell2 = entries.filter((e) => e.cell === "cell-2").length;
    assert.ok(cell2 > 0);
    assert.equal(broken.unverified, cell2);
    assert.equal(broken.passed, false);
    assert.match(broken.findings.find((f) => f.kind === "unverified")?.detail ?? "", /connection refused/);
  } finally {
    await fake.close();
  }
});

test("mapLimit keeps order and the limit", async () => {
  let inFlight = 0;
  let most = 0;
  const out = await mapLimit([5, 1, 4, 2, 3], 2, async (n) => {
    most = Math.max(most, ++inFlight);
    await new Promise((r) => setTimeout(r, n));
    inFlight--;
    return n * 10;
  });
  assert.deepEqual(out, [50, 10, 40, 20, 30]);
  assert.equal(most, 2);
});
