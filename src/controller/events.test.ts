import assert from "node:assert/strict";
import { test } from "node:test";
import { EventFeed, formatEvent, resumeAfter } from "./events.js";

test("events are framed for SSE with id, kind and JSON data", () => {
  const event = {
    id: 7,
    at: "2030-01-01T00:00:00.000Z",
    kind: "cell.fenced",
    actor: "operator",
    subject: "cell-0",
    message: "two\nlines",
    data: { reason: "x" },
  };
  const text = formatEvent(event);
  assert.ok(text.startsWith("id: 7\nevent: cell.fenced\ndata: {"));
  assert.ok(text.endsWith("}\n\n"));
  // A newline inside the event stays escaped inside the one data line.
  assert.equal(text.split("\n").length, 5);
  assert.deepEqual(JSON.parse(text.split("\n")[2]?.slice("data: ".length) ?? ""), event);
});

test("a stream resumes after Last-Event-ID, else after ?after=, else from now", () => {
  assert.equal(resumeAfter("12", "3"), 12);
  assert.equal(resumeAfter(undefined, "3"), 3);
  assert.equal(resumeAfter("garbage", "3"), 3);
  assert.equal(resumeAfter(["5"], undefined), 5);
  assert.equal(resumeAfter(undefined, undefined), undefined);
});

test("the feed wakes subscribers until they unsubscribe, and ends tracked streams", () => {
  const feed = new EventFeed();
  let woken = 0;
  const unsubscribe = feed.subscribe(() => woken++);
  feed.notify();
  assert.equal(feed.subscribers, 1);
  unsubscribe();
  feed.notify();
  assert.equal(woken, 1);
  assert.equal(feed.subscribers, 0);
  let ended = 0;
  feed.track(() => ended++);
  const untrack = feed.track(() => ended++);
  untrack();
  feed.closeAll();
  assert.equal(ended, 1);
});
