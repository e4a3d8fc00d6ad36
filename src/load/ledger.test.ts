import assert from "node:assert/strict";
import { readFileSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import fc from "fast-check";
import { tempDir } from "../lib/temp-dirs.js";
import { type LedgerEntry, LedgerWriter, parseLedger, readLedger } from "./ledger.js";

const tempFile = () => join(tempDir("ringfence-ledger-"), "ledger.jsonl");

function entry(n: number, extra = ""): LedgerEntry {
  const id = `w-run-${n}${extra}`;
  return {
    id,
    tenant: `load-${n % 7}`,
    cell: `cell-${n % 4}`,
    name: `Load ${id}`,
    email: `${id}@load.ringfence.test`,
    lsn: `0/${(0x3000000 + n).toString(16).toUpperCase()}`,
    router: ["us-east", "eu-west"][n % 2] as string,
    servedBy: n % 5 === 0 ? null : `directory/cell-${n % 4}/us-east/0`,
    ackAt: new Date(1_700_000_000_000 + n).toISOString(),
  };
}

test("entries are written in batches: a full batch at once, the rest on the interval, all on close", async () => {
  const file = tempFile();
  const ledger = await LedgerWriter.open(file, { flushIntervalMs: 60_000, maxBatchLines: 3 });
  ledger.append(entry(1));
  ledger.append(entry(2));
  await ledger.flush();
  assert.equal(ledger.durable, 2);
  ledger.append(entry(3));
  ledger.append(entry(4));
  ledger.append(entry(5));
  assert.equal(ledger.buffered, 3 - 3, "the full batch left the buffer at once");
  ledger.append(entry(6));
  await ledger.close();
  assert.equal(ledger.durable, 6);
  const read = await readLedger(file);
  assert.deepEqual(
    read.entries,
    [1, 2, 3, 4, 5, 6].map((n) => entry(n)),
  );
  assert.equal(read.tornTail, undefined);
});

test("the flush interval writes a partial batch without waiting for it to fill", async () => {
  const file = tempFile();
  const ledger = await LedgerWriter.open(file, { flushIntervalMs: 20, maxBatchLines: 500 });
  ledger.append(entry(1));
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(ledger.durable, 1);
  assert.equal(readFileSync(file, "utf8"), `${JSON.stringify(entry(1))}\n`);
  await ledger.close();
});

test("any prefix-truncation of a ledger file reads back as the complete lines before the cut", async () => {
  const file = tempFile();
  const ledger = await LedgerWriter.open(file, { maxBatchLines: 7 });
  // Non-ASCII names too: a cut may fall inside a multi-byte character.
  const entries = Array.from({ length: 40 }, (_, n) => entry(n, n % 3 === 0 ? "-é漢" : ""));
  for (const e of entries) ledger.append(e);
  await ledger.close();
  const full = readFileSync(file);
  const ends: number[] = []; // byte offset just past each line's newline
  for (let i = 0; i < full.length; i++) if (full[i] === 0x0a) ends.push(i + 1);
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: full.length }), async (cut) => {
      const copy = tempFile();
      writeFileSync(copy, full);
      truncateSync(copy, cut);
      const read = await readLedger(copy);
      const complete = ends.filter((end) => end <= cut).length;
      // A cut just before a newline leaves a whole entry without it: it is kept.
      const whole = ends.includes(cut + 1) ? complete + 1 : complete;
      assert.deepEqual(read.entries, entries.slice(0, whole));
      assert.deepEqual(read.malformed, []);
      const tornExpected = cut > 0 && !ends.includes(cut) && !ends.includes(cut + 1);
      assert.equal(read.tornTail !== undefined, tornExpected, `cut at ${cut}`);
      assert.deepEqual(parseLedger(full.subarray(0, cut).toString("utf8")).entries, entries.slice(0, whole));
    }),
    { numRuns: 150, interruptAfterTimeLimit: 10_000 },
  );
});

test("appending after a crash keeps the torn line apart: it reads as one malformed line, the new entries intact", async () => {
  const file = tempFile();
  writeFileSync(file, `${JSON.stringify(entry(1))}\n${JSON.stringify(entry(2)).slice(0, 30)}`);
  const ledger = await LedgerWriter.open(file);
  ledger.append(entry(3));
  await ledger.close();
  const read = await readLedger(file);
  assert.deepEqual(read.entries, [entry(1), entry(3)]);
  assert.deepEqual(read.malformed, [{ line: 2, reason: "not JSON" }]);
  assert.equal(read.tornTail, undefined);
  assert.ok(statSync(file).size > 0);
});

test("lines that are JSON but not entries are reported with their line numbers", () => {
  const text = `${JSON.stringify(entry(1))}\n{"id":"x"}\n\n[1]\n${JSON.stringify(entry(2))}\n`;
  const read = parseLedger(text);
  assert.deepEqual(read.entries, [entry(1), entry(2)]);
  assert.deepEqual(read.malformed, [
    { line: 2, reason: "tenant is missing" },
    { line: 4, reason: "not a JSON object" },
  ]);
});

test("a ledger that cannot be opened or read is a usage error naming --ledger", async () => {
  await assert.rejects(
    readLedger(join(tmpdir(), "no-such-dir-ringfence", "x.jsonl")),
    /--ledger .*cannot read/,
  );
  await assert.rejects(
    LedgerWriter.open(join(tmpdir(), "no-such-dir-ringfence", "x.jsonl")),
    /--ledger .*cannot open/,
  );
});
