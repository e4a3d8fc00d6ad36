/**
 * Terminal rendering of `ringfence status` from the controller's `/v1/status` document.
 */
import pc from "picocolors";

// biome-ignore lint/suspicious/noExplicitAny: the status document is rendered defensively, field by field
type Doc = Record<string, any>;

export function renderStatus(status: Doc, color: boolean): string {
  const c = pc.createColors(color);
  const mark = (h: string | undefined) =>
    h === "healthy"
      ? c.green("●")
      : h === "degraded"
        ? c.yellow("●")
        : h === "unhealthy"
          ? c.red("●")
          : c.dim("○");
  const lines: string[] = [];
  lines.push(JSON.stringify(status).slice(0, 0)); // placeholder until the controller's shape lands
  for (const [key, value] of Object.entries(status)) {
    lines.push(
      `${c.bold(key)} ${mark(undefined)} ${typeof value === "object" ? JSON.stringify(value).slice(0, 200) : String(value)}`,
    );
  }
  return lines.join("\n");
}
