/**
 * Terminal rendering of `ringfence status` from the controller's `/v1/status` document
 * (see src/controller/status.ts for its shape).
 */
import pc from "picocolors";

// biome-ignore lint/suspicious/noExplicitAny: the status document is rendered defensively, field by field
type Doc = Record<string, any>;

export function renderStatus(status: Doc, color: boolean): string {
  const c = pc.createColors(color);
  const dot = (h: string | undefined) =>
    h === "healthy"
      ? c.green("●")
      : h === "degraded"
        ? c.yellow("●")
        : h === "unhealthy"
          ? c.red("●")
          : c.dim("○");
  const why = (r: Doc | undefined) =>
    r && r.health !== "healthy" && r.reason ? c.dim(` (${r.reason})`) : "";
  const age = (ms: number | null | undefined) =>
    ms === null || ms === undefined ? "never" : `${(ms / 1000).toFixed(1)} s ago`;
  const bytes = (n: number | null | undefined) =>
    n === null || n === undefined
      ? "?"
      : n < 1024
        ? `${n} B`
        : n < 1 << 20
          ? `${(n / 1024).toFixed(1)} KiB`
          : `${(n / (1 << 20)).toFixed(1)} MiB`;
  const ms = (n: number | null | undefined) => (n === null || n === undefined ? "-" : `${n.toFixed(1)} ms`);
  const lines: string[] = [];
  const world = status.world ?? {};
  lines.push(
    `${dot(world.rollup?.health)} ${c.bold(`world ${world.name ?? ""}`)}${why(world.rollup)} ${c.dim(`at ${status.generatedAt ?? ""}`)}`,
  );

  lines.push("", c.bold("Regions and zones"));
  const routers: Doc[] = status.routers ?? [];
  for (const r of (status.regions ?? []) as Doc[]) {
    const router = routers.find((x) => x.region === r.name);
    const routerText = router
      ? `router ${dot(router.reachable ? (router.stale ? "degraded" : "healthy") : "unhealthy")} table v${router.tableVersion ?? "?"}${router.stale ? c.yellow(" (stale)") : ""}, ${router.requests ?? 0} requests, ${router.errors ?? 0} errors`
      : "router ○ not reporting";
    lines.push(`  ${dot(r.rollup?.health)} ${String(r.name).padEnd(14)} ${routerText}${why(r.rollup)}`);
    for (const z of (r.zones ?? []) as Doc[]) {
      const a = z.agent ?? {};
      lines.push(
        `      ${dot(z.rollup?.health)} ${String(z.id).padEnd(16)} ${z.host ?? ""}  agent ${a.reachable ? `heartbeat ${age(a.lastHeartbeatAgeMs)}` : c.red("unreachable")}${why(z.rollup)}`,
      );
    }
  }

  lines.push("", c.bold("Cells"));
  for (const cell of (status.cells ?? []) as Doc[]) {
    lines.push(
      `  ${dot(cell.rollup?.health)} ${c.bold(String(cell.cell))} primary ${cell.primary} (epoch ${cell.epoch})${cell.fenced ? c.red(" FENCED") : ""}  sync: ${cell.synchronousStandbyNames ?? c.yellow("none (asynchronous)")}  durability: ${cell.durability?.policy ?? "?"}${cell.durability?.commit === "async" ? c.yellow(" (async commit now)") : ""}${why(cell.rollup)}`,
    );
    for (const db of (cell.databases ?? []) as Doc[]) {
      const rep = db.replication;
      const replication = rep
        ? `${rep.state}, ${rep.syncState}, lag ${bytes(rep.lagBytes)}, flush ${ms(rep.flushLagMs)}, replay ${ms(rep.replayLagMs)}`
        : db.role === "primary"
          ? `lsn ${db.lsn ?? "?"}`
          : c.yellow("not streaming");
      lines.push(
        `      ${dot(db.health)} ${String(db.region).padEnd(12)} ${String(db.role).padEnd(8)} ${String(db.state).padEnd(8)} restarts ${db.restarts ?? "?"}  ${replication}`,
      );
    }
  }

  const instances: Doc[] = status.instances ?? [];
  const healthy = instances.filter((i) => i.rollup?.health === "healthy");
  const notable = instances.filter((i) => i.rollup?.health !== "healthy" || (i.restarts ?? 0) > 0);
  lines.push("", c.bold(`Instances: ${healthy.length}/${instances.length} healthy`));
  for (const i of notable) {
    lines.push(
      `  ${dot(i.rollup?.health)} ${String(i.id).padEnd(40)} ${String(i.state).padEnd(8)} restarts ${i.restarts ?? "?"}  ${c.dim(String(i.detail ?? ""))}`,
    );
  }

  const events: Doc[] = status.events ?? [];
  if (events.length > 0) {
    lines.push("", c.bold("Recent events"));
    for (const e of events.slice(-10)) {
      lines.push(
        `  ${c.dim(String(e.at ?? "").slice(11, 19))} ${String(e.kind).padEnd(26)} ${e.subject}: ${e.message}`,
      );
    }
  }
  return lines.join("\n");
}
