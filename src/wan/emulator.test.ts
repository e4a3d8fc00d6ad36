import assert from "node:assert/strict";
import { test } from "node:test";
import { WanEmulator } from "./emulator.js";
import { Link } from "./link.js";
import { closesWithin, connect, roundTrip, startEchoServer } from "./testing.js";

test("links are found by their unordered pair and listed in order", () => {
  const wan = new WanEmulator();
  const transatlantic = wan.addLink("us-east", "eu-west", 40);
  const pacific = wan.addLink("us-west", "ap-south", 90, { jitterMs: 5 });
  assert.equal(wan.link("eu-west", "us-east"), transatlantic);
  assert.equal(wan.link("us-east", "eu-west"), transatlantic);
  assert.equal(pacific.jitterMs, 5);
  assert.deepEqual(
    wan.links().map((l) => l.name),
    ["eu-west~us-east", "ap-south~us-west"],
  );
  assert.throws(() => wan.addLink("eu-west", "us-east", 10), /already has a link eu-west~us-east/);
  assert.throws(() => wan.link("us-east", "ap-south"), /no link ap-south~us-east; add it with addLink/);
});

test("snapshot() gives every link's JSON-able state", () => {
  const wan = new WanEmulator();
  wan.addLink("a", "b", 10);
  wan.addLink("b", "c", 20).partition();
  const snapshot = wan.snapshot();
  assert.deepEqual(
    snapshot.map((s) => [s.name, s.latencyMs, s.partitioned]),
    [
      ["a~b", 10, false],
      ["b~c", 20, true],
    ],
  );
  assert.deepEqual(JSON.parse(JSON.stringify(snapshot)), snapshot);
});

test("addForward accepts a link or its name, carries traffic, and close() shuts every forward", async (t) => {
  const echo = await startEchoServer(t);
  const wan = new WanEmulator();
  t.after(() => wan.close());
  wan.addLink("us-east", "eu-west", 5);

  const byName = await wan.addForward({
    link: "us-east~eu-west",
    targetHost: "127.0.0.1",
    targetPort: echo.port,
  });
  const byLink = await wan.addForward({
    link: wan.link("eu-west", "us-east"),
    listenHost: "127.0.0.1",
    listenPort: 0,
    targetHost: "127.0.0.1",
    targetPort: echo.port,
  });
  assert.equal(byName.link, byLink.link);
  assert.deepEqual(byName.target, { host: "127.0.0.1", port: echo.port });
  assert.equal(byName.address().host, "127.0.0.1");
  assert.equal(wan.forwards().length, 2);

  const a = await connect(t, byName.address().port);
  const b = await connect(t, byLink.address().port);
  assert.ok((await roundTrip(a, "via name")) >= 9);
  assert.ok((await roundTrip(b, "via link")) >= 9);
  assert.equal(wan.snapshot()[0]?.connections, 2);

  await wan.close();
  assert.ok(await closesWithin(a, 2_000));
  assert.ok(await closesWithin(b, 2_000));
  assert.equal(wan.forwards().length, 0);
  assert.equal(wan.snapshot()[0]?.connections, 0);
  await assert.rejects(
    wan.addForward({ link: "us-east~eu-west", targetHost: "127.0.0.1", targetPort: echo.port }),
    /closed/,
  );
});

test("addForward rejects unknown links and links from elsewhere", async () => {
  const wan = new WanEmulator();
  wan.addLink("a", "b", 1);
  const target = { targetHost: "127.0.0.1", targetPort: 9 };
  await assert.rejects(wan.addForward({ link: "a~c", ...target }), /no link a~c/);
  await assert.rejects(wan.addForward({ link: "a-b", ...target }), /joined by "~"/);
  await assert.rejects(
    wan.addForward({ link: new Link("a", "b", { latencyMs: 1 }), ...target }),
    /does not belong to this WAN emulator/,
  );
  await wan.close();
});
