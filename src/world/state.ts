/**
 * The state directory of a local world: everything `ringfence up` creates and `ringfence down`
 * keeps, so that `up` again resumes with the data intact.
 *
 *   world.json          the topology it runs, the address base, where PostgreSQL data lives
 *   topology.yaml       a copy of the topology file
 *   topology.json       the topology as compiled by the supervisor at start, read by every role
 *   tokens.json         bearer tokens (reader, operator, agent), mode 0600, created once
 *   token-secret        the demo service's HMAC secret, mode 0600
 *   supervisor.pid      the running world's supervisor
 *   processes.json      the supervisor and every process it started, with start times, so that
 *                       `ringfence down` finds them when the supervisor was killed
 *   logs/               one log per process
 *   pg/                 PostgreSQL data (or a folder under /var/tmp when the postgres user cannot
 *                       reach this one: running as root from a home directory)
 *   agents/ZONE/        each agent's last-known desired state (static stability)
 *   routers/REGION.json each router's last-known routing table
 */
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { RingfenceError } from "../lib/errors.js";
import { makeOwnedDir, pgRunAs, type RunAs, untraversableParent } from "../lib/postgres.js";

export interface Tokens {
  readonly reader: string;
  readonly operator: string;
  readonly agent: string;
}

export interface WorldConfig {
  readonly version: 1;
  /** Absolute path of the topology copy the world runs. */
  readonly topologyFile: string;
  /** Where the topology came from (a path or `bundled:NAME`). */
  readonly topologySource: string;
  readonly addressBase: number;
  /** Root of PostgreSQL data directories. */
  readonly pgRoot: string;
  readonly createdAt: string;
}

/**
 * The cluster the world copies new primaries from (`initPrimary`): made once, by the first start,
 * and never started itself.
 */
export function pgTemplateDir(world: WorldConfig): string {
  return join(world.pgRoot, "template");
}

/** The data directory of the database in `slot`: one folder per slot under the world's PostgreSQL root. */
export function dataDirOf(world: WorldConfig, slot: { readonly id: string }): string {
  return join(world.pgRoot, slot.id.replace(/\//g, "-"));
}

export class StateDir {
  readonly root: string;
  constructor(root: string) {
    this.root = resolve(root);
  }

  get configFile(): string {
    return join(this.root, "world.json");
  }
  /** The compiled topology the supervisor writes at each start and every role reads. */
  get compiledTopologyFile(): string {
    return join(this.root, "topology.json");
  }
  get tokensFile(): string {
    return join(this.root, "tokens.json");
  }
  get secretFile(): string {
    return join(this.root, "token-secret");
  }
  get pidFile(): string {
    return join(this.root, "supervisor.pid");
  }
  get processesFile(): string {
    return join(this.root, "processes.json");
  }
  get logs(): string {
    return join(this.root, "logs");
  }
  log(name: string): string {
    return join(this.logs, `${name.replace(/[^A-Za-z0-9._-]+/g, "-")}.log`);
  }
  agentDir(zone: string): string {
    return join(this.root, "agents", zone.replace(/\//g, "-"));
  }

  /** The desired state an agent last applied, kept for a start without the controller. */
  desiredFile(zone: string): string {
    return join(this.agentDir(zone), "desired.json");
  }
  routerTable(region: string): string {
    return join(this.root, "routers", `${region}.json`);
  }

  exists(): boolean {
    return existsSync(this.configFile);
  }

  readConfig(): WorldConfig {
    if (!this.exists()) {
      throw new RingfenceError(
        "RINGFENCE_WORLD_NOT_FOUND",
        `no world in ${this.root}: start one with \`ringfence up\` (or pass --state-dir)`,
      );
    }
    return JSON.parse(readFileSync(this.configFile, "utf8")) as WorldConfig;
  }

  /** Creates the folders, tokens and secret on first use; keeps existing ones. */
  initialise(config: Omit<WorldConfig, "version" | "createdAt" | "pgRoot">): WorldConfig {
    mkdirSync(this.root, { recursive: true, mode: 0o755 });
    chmodSync(this.root, 0o755); // PostgreSQL (another user when we are root) may need to pass through
    for (const dir of [this.logs, join(this.root, "agents"), join(this.root, "routers")])
      mkdirSync(dir, { recursive: true });
    if (!existsSync(this.tokensFile)) {
      const tokens: Tokens = { reader: token("rdr"), operator: token("opr"), agent: token("agt") };
      writeFileSync(this.tokensFile, `${JSON.stringify(tokens, null, 2)}\n`, { mode: 0o600 });
    }
    chmodSync(this.tokensFile, 0o600);
    if (!existsSync(this.secretFile))
      writeFileSync(this.secretFile, randomBytes(32).toString("hex"), { mode: 0o600 });
    const previous = this.exists() ? this.readConfig() : undefined;
    const world: WorldConfig = {
      version: 1,
      topologyFile: config.topologyFile,
      topologySource: config.topologySource,
      addressBase: config.addressBase,
      pgRoot: previous?.pgRoot ?? this.#choosePgRoot(pgRunAs()),
      createdAt: previous?.createdAt ?? new Date().toISOString(),
    };
    writeFileSync(this.configFile, `${JSON.stringify(world, null, 2)}\n`);
    return world;
  }

  tokens(): Tokens {
    return JSON.parse(readFileSync(this.tokensFile, "utf8")) as Tokens;
  }

  tokenSecret(): string {
    return readFileSync(this.secretFile, "utf8").trim();
  }

  /** `pg/` here, unless the postgres user cannot reach it: then a folder under /var/tmp. */
  #choosePgRoot(runAs: RunAs | undefined): string {
    const inside = join(this.root, "pg");
    // `pg/` does not exist yet: ask about the folders above it, which do.
    const blocked = untraversableParent(inside, runAs);
    const root = blocked
      ? join("/var/tmp", `ringfence-pg-${createHash("sha256").update(this.root).digest("hex").slice(0, 12)}`)
      : inside;
    mkdirSync(root, { recursive: true, mode: 0o755 });
    chmodSync(root, 0o755);
    if (runAs) makeOwnedDir(root, runAs, 0o755);
    return root;
  }
}

function token(prefix: string): string {
  return `rf_${prefix}_${randomBytes(24).toString("base64url")}`;
}
