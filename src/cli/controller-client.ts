/**
 * The CLI's way to the controller of a local world: its address from the state directory's layout,
 * the role's token from `tokens.json`, JSON in and out. A controller that does not answer is
 * RINGFENCE_WORLD_NOT_FOUND; an error answer is shown with its code and message.
 */
import { RingfenceError } from "../lib/errors.js";
import { loadTopology } from "../topology/load.js";
import { buildLayout } from "../world/layout.js";
import { StateDir } from "../world/state.js";

export async function call(
  stateDir: string,
  method: string,
  path: string,
  role: "reader" | "operator",
  body?: unknown,
): Promise<unknown> {
  const state = new StateDir(stateDir);
  const config = state.readConfig();
  const layout = buildLayout(loadTopology(config.topologyFile), config.addressBase);
  const url = `http://${layout.controller.host}:${layout.controller.port}${path}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${state.tokens()[role]}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(5_000),
    });
  } catch (err) {
    throw new RingfenceError(
      "RINGFENCE_WORLD_NOT_FOUND",
      `the controller at ${url} does not answer (${(err as Error).message}); is the world up?`,
    );
  }
  const text = await res.text();
  const parsed = text === "" ? {} : (JSON.parse(text) as { error?: { message?: string; code?: string } });
  if (!res.ok) {
    const e = (parsed as { error?: { message?: string; code?: string } }).error;
    throw new RingfenceError("RINGFENCE_USAGE", `${e?.code ?? res.status}: ${e?.message ?? text}`);
  }
  return parsed;
}
