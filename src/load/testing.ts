/**
 * A fake world for the load and audit tests: one node:http "router" per region in front of one
 * in-memory directory (`PUT`/`GET /users/:id` with the headers real routers and the demo service
 * send), with knobs to slow it down or break reads in a region. No PostgreSQL needed.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type PrimaryReader, type StoredUser, writeKey } from "./audit.js";
import type { Target } from "./http.js";

export interface FakeUser extends StoredUser {
  readonly tenant: string;
  readonly id: string;
  readonly lsn: string;
}

export interface FakeDirectory {
  readonly routers: readonly Target[];
  /** Every stored user by `writeKey(tenant, id)`; tests edit it to simulate loss and corruption. */
  readonly users: Map<string, FakeUser>;
  /** Requests answered per region. */
  readonly answered: Map<string, number>;
  /** Milliseconds every answer waits (mutable). */
  delayMs: number;
  /** Regions whose GETs answer 503 (mutable). */
  readonly failReadsIn: Set<string>;
  /** Reads `users` as a cell's primary would. */
  readonly primary: PrimaryReader;
  close(): Promise<void>;
}

export async function startFakeDirectory(options: {
  readonly regions: readonly string[];
  readonly cellOf: (tenant: string) => string;
  readonly delayMs?: number;
  /** Where each region's router listens (default 127.0.0.1 on a free port). */
  readonly listen?: Readonly<Record<string, { readonly host: string; readonly port: number }>>;
}): Promise<FakeDirectory> {
  const users = new Map<string, FakeUser>();
  const answered = new Map<string, number>();
  let lsn = 0x3000000;
  const servers: Server[] = [];
  const routers: Target[] = [];
  const fake: FakeDirectory = {
    routers,
    users,
    answered,
    delayMs: options.delayMs ?? 0,
    failReadsIn: new Set(),
    primary: {
      async read(cell, keys) {
        const found = new Map<string, StoredUser>();
        for (const { tenant, id } of keys) {
          const user = users.get(writeKey(tenant, id));
          if (user && options.cellOf(tenant) === cell) found.set(writeKey(tenant, id), user);
        }
        return found;
      },
    },
    async close() {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.closeAllConnections();
              s.close(() => resolve());
            }),
        ),
      );
    },
  };

  const handle = async (region: string, req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
    if (fake.delayMs > 0) await new Promise((r) => setTimeout(r, fake.delayMs));
    answered.set(region, (answered.get(region) ?? 0) + 1);
    const tenant = String(req.headers["x-tenant"] ?? "");
    const match = /^\/users\/([^/?]+)$/.exec(req.url ?? "");
    const cell = options.cellOf(tenant);
    const head = { "content-type": "application/json", "x-ringfence-cell": cell };
    if (!match || tenant === "") {
      res.writeHead(400, head).end(JSON.stringify({ error: { code: "RINGFENCE_TENANT_MISSING" } }));
      return;
    }
    const id = decodeURIComponent(match[1] as string);
    const servedBy = { ...head, "x-ringfence-served-by": `directory/${cell}/${region}/0` };
    if (req.method === "PUT") {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as StoredUser;
      const user: FakeUser = {
        tenant,
        id,
        name: body.name,
        email: body.email,
        lsn: `0/${(lsn++).toString(16).toUpperCase()}`,
      };
      users.set(writeKey(tenant, id), user);
      res
        .writeHead(200, { ...servedBy, "x-ringfence-commit-lsn": user.lsn })
        .end(JSON.stringify({ user, lsn: user.lsn }));
      return;
    }
    if (fake.failReadsIn.has(region)) {
      res.writeHead(503, servedBy).end(JSON.stringify({ error: { code: "STORE_UNAVAILABLE" } }));
      return;
    }
    const user = users.get(writeKey(tenant, id));
    if (!user) {
      res.writeHead(404, servedBy).end(JSON.stringify({ error: { code: "USER_NOT_FOUND" } }));
      return;
    }
    res.writeHead(200, servedBy).end(JSON.stringify({ user }));
  };

  for (const region of options.regions) {
    const server = createServer((req, res) => {
      handle(region, req, res).catch(() => res.destroy());
    });
    const at = options.listen?.[region] ?? { host: "127.0.0.1", port: 0 };
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(at.port, at.host, resolve);
    });
    servers.push(server);
    routers.push({ region, host: at.host, port: (server.address() as AddressInfo).port });
  }
  return fake;
}
