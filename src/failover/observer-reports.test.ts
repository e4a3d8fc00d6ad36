import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { judgePrimary, type Probe } from "./detection.js";
import { ObserverReports, type ReportedProbe } from "./observer-reports.js";
import { detectionSettings } from "./settings.js";

const OPTIONS = detectionSettings(3_000);
const TARGET = "cell-0/r1";
/** The controller's clock minus the observer's monotonic clock. */
const SKEW = 1_000_000;
const sender = (observer: string, sentMonoMs: number, session = "1@t0") => ({
  observer,
  region: observer.split("/")[0] as string,
  session,
  sentMonoMs,
});
const failing = (consecutiveFailures: number, ageMs = 0): ReportedProbe => ({
  target: TARGET,
  ok: false,
  consecutiveFailures,
  ageMs,
});
const ok = (ageMs = 0): ReportedProbe => ({ target: TARGET, ok: true, consecutiveFailures: 0, ageMs });
const only = (r: ObserverReports): Probe => {
  const probes = r.probes(TARGET);
  assert.equal(probes.length, 1);
  return probes[0] as Probe;
};

test("a report is dated by when its probe observed, not when it arrived: a late one is as old as what it saw", () => {
  const r = new ObserverReports({ driftPerMs: 0 }); // with the default creep it would gain 39 ms
  r.receive(sender("r2/a", 1_000), [ok(100)], SKEW + 1_005); // 5 ms on the way
  r.receive(sender("r2/a", 2_000), [failing(1, 300)], SKEW + 40_000); // held back 38 s
  const p = only(r);
  assert.equal(p.ok, false);
  assert.equal(p.atMs, SKEW + 1_700 + 5, "dated by the fastest transit seen, not by receipt");
  const v = judgePrimary({ cell: "cell-0", primaryRegion: "r1", probes: [p] }, SKEW + 40_000, OPTIONS);
  assert.equal(v.state, "suspect");
});

test("reordered and duplicated reports never replace a newer observation", () => {
  const r = new ObserverReports();
  r.receive(sender("r2/a", 1_000), [ok()], SKEW + 1_000);
  r.receive(sender("r2/a", 3_000), [failing(2)], SKEW + 3_000);
  r.receive(sender("r2/a", 2_000), [ok()], SKEW + 3_100); // older, arrives after
  r.receive(sender("r2/a", 3_000), [failing(2)], SKEW + 3_200); // a duplicate
  assert.deepEqual(only(r), {
    observer: "r2/a",
    region: "r2",
    ok: false,
    consecutiveFailures: 2,
    atMs: SKEW + 3_000,
  });
});

test("a paused observer: failures seen before the gap are dropped, its streak counts only what it saw after", () => {
  const r = new ObserverReports();
  r.receive(sender("r2/a", 1_000), [ok()], SKEW + 1_000);
  r.receive(sender("r2/a", 2_000), [failing(1)], SKEW + 2_000);
  // Frozen 45 s; on thaw its probe timeouts fire at once, reported with their pre-freeze start.
  r.receive(sender("r2/a", 47_000), [failing(3, 45_000)], SKEW + 47_000);
  assert.deepEqual(r.probes(TARGET), [], "a failure from before the gap still counted");
  r.receive(sender("r2/a", 47_600), [failing(4, 100)], SKEW + 47_600);
  assert.equal(only(r).consecutiveFailures, 1, "the streak was carried over the gap");
  r.receive(sender("r2/a", 48_100), [failing(5, 100)], SKEW + 48_100);
  assert.equal(only(r).consecutiveFailures, 2);
  r.receive(sender("r2/a", 48_600), [ok(100)], SKEW + 48_600);
  r.receive(sender("r2/a", 49_100), [failing(1, 100)], SKEW + 49_100);
  assert.equal(only(r).consecutiveFailures, 1, "a new streak after the gap counts in full");
});

test("a success seen before the gap still counts while fresh: it is never an artefact of a pause", () => {
  const r = new ObserverReports();
  r.receive(sender("r2/a", 1_000), [ok()], SKEW + 1_000);
  r.receive(sender("r2/a", 5_000), [ok(200)], SKEW + 5_000);
  assert.equal(only(r).ok, true);
  assert.equal(only(r).atMs, SKEW + 4_800);
});

test("a restarted observer starts on a new clock; an older agent without clocks is dated by receipt", () => {
  const r = new ObserverReports();
  r.receive(sender("r2/a", 50_000), [failing(2)], SKEW + 50_000);
  r.receive(sender("r2/a", 10, "2@t1"), [ok(5)], SKEW + 60_000);
  assert.equal(only(r).atMs, SKEW + 60_000 - 5);
  const old = new ObserverReports();
  old.receive({ observer: "r3/a", region: "r3", session: "x" }, [failing(2, 9_999)], 7_000);
  assert.equal(only(old).atMs, 7_000);
});

test("options are checked", () => {
  assert.throws(() => new ObserverReports({ gapMs: 0 }), /gapMs/);
  assert.throws(() => new ObserverReports({ driftPerMs: -1 }), /driftPerMs/);
});

/**
 * Property. Each observer (one per region) probes every 500 ms of its own clock, pauses now and
 * then, and reports its latest result with its age; reports reach the controller late, out of order
 * and twice. Whatever the delivery, a verdict of "failed" is one that the fresh observations alone
 * would give: the newest delivered probe of each observer, dated by when it was truly observed.
 * (The fold's clock mapping is exact here because each observer's first report arrives at once; in
 * general it is late by at most the fastest transit seen. Creep is off so the mapping is exact.)
 */
const observerRun = fc.record({
  skew: fc.integer({ min: -1_000_000, max: 1_000_000 }),
  /** Per probe: did it reach the primary? */
  outcomes: fc.array(fc.boolean(), { minLength: 4, maxLength: 40 }),
  /** Per report: probes since the last one (1 or 2), or a pause (many). */
  steps: fc.array(fc.oneof(fc.constantFrom(1, 2), fc.integer({ min: 7, max: 90 })), { maxLength: 30 }),
  /** Per report: delay in transit, and whether it is delivered twice. */
  delays: fc.array(fc.tuple(fc.oneof(fc.nat({ max: 50 }), fc.nat({ max: 60_000 })), fc.boolean()), {
    maxLength: 30,
  }),
});

test("property: late, reordered, duplicated and stale reports never make a verdict of failed that fresh observations alone would not", () => {
  fc.assert(
    fc.property(
      fc.array(observerRun, { minLength: 1, maxLength: 3 }),
      fc.integer({ min: 0, max: 40_000 }),
      fc.constantFrom(1, 2),
      (runs, nowOffset, failuresToDeclare) => {
        interface Sent {
          observer: string;
          sentMonoMs: number;
          arrivesAtMs: number;
          probe: ReportedProbe;
          trueAtMs: number;
        }
        const deliveries: Sent[] = [];
        let latestSend = 0;
        runs.forEach((run, i) => {
          const observer = `r${i + 2}/a`;
          let streak = 0;
          const probes = run.outcomes.map((okay, n) => {
            streak = okay ? 0 : streak + 1;
            return { monoMs: 1_000 + n * 500, ok: okay, consecutiveFailures: streak };
          });
          let index = 0;
          run.steps.forEach((step, k) => {
            index = Math.min(probes.length - 1, index + step);
            const latest = probes[index] as (typeof probes)[number];
            const sentMonoMs = latest.monoMs + 100;
            const [delay, twice] = k === 0 ? [0, false] : (run.delays[k] ?? [0, false]);
            const probe = {
              target: TARGET,
              ok: latest.ok,
              consecutiveFailures: latest.consecutiveFailures,
              ageMs: 100,
            };
            const sent = {
              observer,
              sentMonoMs,
              arrivesAtMs: sentMonoMs + run.skew + delay,
              probe,
              trueAtMs: latest.monoMs + run.skew,
            };
            deliveries.push(sent);
            if (twice) deliveries.push({ ...sent, arrivesAtMs: sent.arrivesAtMs + 1 });
            latestSend = Math.max(latestSend, sentMonoMs + run.skew);
          });
        });
        const nowMs = latestSend + nowOffset - 20_000;
        const delivered = deliveries
          .filter((d) => d.arrivesAtMs <= nowMs)
          .sort((a, b) => a.arrivesAtMs - b.arrivesAtMs);
        const reports = new ObserverReports({ driftPerMs: 0 });
        for (const d of delivered)
          reports.receive(sender(d.observer, d.sentMonoMs), [d.probe], d.arrivesAtMs);
        const options = { ...OPTIONS, failuresToDeclare };
        const verdict = judgePrimary(
          { cell: "cell-0", primaryRegion: "r1", probes: reports.probes(TARGET) },
          nowMs,
          options,
        );
        // The oracle: each observer's newest delivered observation, by its true time.
        const newest = new Map<string, Sent>();
        for (const d of delivered) {
          const held = newest.get(d.observer);
          if (!held || d.trueAtMs > held.trueAtMs) newest.set(d.observer, d);
        }
        const truth = [...newest.values()].map((d) => ({
          observer: d.observer,
          region: d.observer.split("/")[0] as string,
          ok: d.probe.ok,
          consecutiveFailures: d.probe.consecutiveFailures,
          atMs: d.trueAtMs,
        }));
        const oracle = judgePrimary({ cell: "cell-0", primaryRegion: "r1", probes: truth }, nowMs, options);
        if (verdict.state === "failed")
          assert.equal(oracle.state, "failed", JSON.stringify({ verdict, truth }));
        // And every probe the fold keeps is dated no later than it was truly observed.
        for (const p of reports.probes(TARGET)) {
          const mine = delivered.filter((d) => d.observer === p.observer).map((d) => d.trueAtMs);
          assert.ok(mine.includes(p.atMs), `probe of ${p.observer} dated ${p.atMs}, seen at ${mine}`);
        }
      },
    ),
    { numRuns: 1_500 },
  );
});

test("reachedElsewhere: whether an observer reached another region's primary since a time, undefined when it probes nothing else", () => {
  const reports = new ObserverReports({ gapMs: 3_000 });
  const sender = { observer: "r2/a", region: "r2", session: "1@t", sentMonoMs: 10_000 };
  const p = (target: string, ok: boolean) => ({
    target,
    ok,
    consecutiveFailures: ok ? 0 : 3,
    latencyMs: ok ? 2 : null,
    detail: "",
    ageMs: 100,
  });
  reports.receive(sender, [p("cell-0/r1", false)], 50_000);
  assert.equal(reports.reachedElsewhere("r2/a", "r1", 0), undefined, "it probes only r1");
  reports.receive({ ...sender, sentMonoMs: 10_500 }, [p("cell-0/r1", false), p("cell-1/r3", false)], 50_500);
  assert.equal(reports.reachedElsewhere("r2/a", "r1", 0), false, "it reaches nothing");
  reports.receive({ ...sender, sentMonoMs: 11_000 }, [p("cell-0/r1", false), p("cell-1/r3", true)], 51_000);
  assert.equal(reports.reachedElsewhere("r2/a", "r1", 50_000), true);
  assert.equal(reports.reachedElsewhere("r2/a", "r1", 52_000), undefined, "nothing observed since then");
  // Its probes of cell-1/r3 fail now: it reaches nothing outside r1.
  reports.receive({ ...sender, sentMonoMs: 11_500 }, [p("cell-0/r1", false), p("cell-1/r3", false)], 51_500);
  assert.equal(reports.reachedElsewhere("r2/a", "r1", 51_000), false, "reaches nothing else");
  // cell-1 moved into r1: the observer probes only r1 now, and its old cell-1/r3 entry does not count.
  reports.receive({ ...sender, sentMonoMs: 12_000 }, [p("cell-0/r1", false), p("cell-1/r1", false)], 52_000);
  assert.equal(reports.reachedElsewhere("r2/a", "r1", 51_600), undefined, "a target it no longer probes");
  assert.equal(
    reports.reachedElsewhere("r2/a", "r3", 0),
    false,
    "cell-0/r1 is the other target, and it fails",
  );
  assert.equal(reports.reachedElsewhere("r3/a", "r1", 0), undefined, "an observer never heard from");
});
