import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const navigatorModule = fileURLToPath(new URL("./navigator.js", import.meta.url));

test("defineNavigator gives Node.js 20 the navigator of later versions, and leaves an existing one alone", () => {
  const script = `
    const { defineNavigator } = await import(${JSON.stringify(navigatorModule)});
    const had = typeof globalThis.navigator;
    defineNavigator();
    const first = globalThis.navigator;
    defineNavigator();
    console.log(JSON.stringify({ had, same: first === globalThis.navigator, userAgent: navigator.userAgent, cores: navigator.hardwareConcurrency }));
  `;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { had: string; same: boolean; userAgent: string; cores: number };
  assert.equal(out.same, true, "a second call changes nothing");
  assert.match(out.userAgent, /^Node\.js\/\d+/);
  assert.ok(out.cores >= 1);
});
