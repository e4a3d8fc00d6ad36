/**
 * The zod schema of `ringfence.yaml`. Values in human units (`"5s"`, `"99.95"`) are parsed here;
 * cross-field rules (unknown regions, duplicate names, impossible replica counts) live in
 * `validate.ts`; `compile.ts` turns the result into the frozen `Topology` with `...Ms` fields.
 *
 * Each top-level section has its own schema so that a type error in one section does not hide the
 * problems of another: the loader parses them independently and reports everything at once.
 */
import { z } from "zod";
import { parseDurationMs, parsePercent } from "../lib/units.js";

/** A name used in ids, URLs and process names: lower-case letters, digits and dashes. */
export const NAME_RE = /^[a-z][a-z0-9-]{0,62}$/;
const name = (what: string) =>
  z.string().regex(NAME_RE, {
    error: (iss) =>
      `a ${what} name must be lower-case letters, digits and dashes, starting with a letter (e.g. "us-east"); got ${JSON.stringify(iss.input)}`,
  });

/** A duration such as `250ms`, `5s`, `4h`, `30d` or `1y`, parsed to milliseconds. */
export const duration = () =>
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    const ms = parseDurationMs(value);
    if (ms === undefined) {
      ctx.issues.push({
        code: "custom",
        input: value,
        message: `must be a duration such as "250ms", "5s", "4h" or "30d"; got ${JSON.stringify(value)}`,
      });
      return z.NEVER;
    }
    return ms;
  });

/** An availability percentage strictly between 0 and 100, such as `99.95` or `"99.95%"`. */
export const availabilityPercent = () =>
  z.union([z.number(), z.string()]).transform((value, ctx) => {
    const pct = parsePercent(value);
    if (pct === undefined) {
      ctx.issues.push({
        code: "custom",
        input: value,
        message: `must be a percentage such as 99.95; got ${JSON.stringify(value)}`,
      });
      return z.NEVER;
    }
    if (pct >= 100 || pct <= 0) {
      ctx.issues.push({
        code: "custom",
        input: value,
        message: `must be ${pct >= 100 ? "below 100" : "above 0"}, got ${pct}${pct >= 100 ? " (nothing is 100% available: use e.g. 99.999)" : ""}`,
      });
      return z.NEVER;
    }
    return pct;
  });

/** A share in percent from 0 to 100 (traffic share, blast-radius target). */
const sharePercent = () =>
  z.union([z.number(), z.string()]).transform((value, ctx) => {
    const pct = parsePercent(value);
    if (pct === undefined || pct < 0 || pct > 100) {
      ctx.issues.push({
        code: "custom",
        input: value,
        message: `must be a percentage from 0 to 100; got ${JSON.stringify(value)}`,
      });
      return z.NEVER;
    }
    return pct;
  });

const count = (min: number, max = 1_000_000_000) => z.number().int().min(min).max(max);

/** A program to run: a string split on white space, or an argv list. */
const command = () =>
  z
    .union([z.string().trim().min(1), z.array(z.string().trim().min(1)).min(1)], {
      error: (iss) =>
        `must be a command line or a list of arguments, e.g. "node server.js"; got ${JSON.stringify(iss.input)}`,
    })
    .transform((v) => (typeof v === "string" ? v.split(/\s+/) : v));

export const ROUTE_RE = /^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|\*) (\/\S*)$/;
const route = () =>
  z.string().regex(ROUTE_RE, {
    error: (iss) =>
      `a route is "METHOD /path" with METHOD one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or *, e.g. "GET /users/:id"; got ${JSON.stringify(iss.input)}`,
  });

export const regionSchema = z.strictObject({
  name: name("region"),
  zones: z.array(name("zone")).min(1, { error: "a region needs at least one zone, e.g. zones: [a, b]" }),
  pair: name("region").optional(),
  latency: z.record(z.string(), duration()).optional(),
  location: z
    .tuple([z.number().min(-90).max(90), z.number().min(-180).max(180)], {
      error: "must be [latitude, longitude] in degrees, e.g. [39.0, -77.5]",
    })
    .optional(),
  trafficShare: sharePercent().optional(),
});

export const regionsSchema = z
  .array(regionSchema)
  .min(1, { error: "at least one region is needed, e.g. regions: [{name: us-east, zones: [a, b]}]" });

export const cellsSchema = z.strictObject({
  count: count(1, 65_535),
  replicas: count(1, 64).optional(),
  buckets: count(1, 1_048_576).default(16_384),
  syncQuorum: count(0, 63).optional(),
  regions: z.array(name("region")).min(1).optional(),
  pin: z
    .array(
      z.strictObject({
        cell: count(0, 65_534),
        regions: z.array(name("region")).min(1),
      }),
    )
    .default([]),
});

const sloSchema = z.strictObject({
  scenario: name("scenario"),
  routes: z
    .array(route())
    .min(1, { error: 'an SLO needs at least one route, e.g. routes: ["POST /tokens"]' }),
  availability: availabilityPercent(),
  latency: duration(),
  latencyPercentile: z
    .number({
      error: (iss) =>
        `must be a percentage of requests such as 99 (for p99); got ${JSON.stringify(iss.input)}`,
    })
    .gt(0, { error: (iss) => `must be above 0; got ${JSON.stringify(iss.input)}` })
    .max(100, { error: (iss) => `must be at most 100; got ${JSON.stringify(iss.input)}` })
    .default(99),
  writes: z.boolean().optional(),
  hedge: z.boolean().default(false),
  dependencies: z.array(name("dependency")).default([]),
});

export const serviceSchema = z.strictObject({
  name: name("service"),
  command: command(),
  health: z
    .string()
    .regex(/^\/\S*$/, { error: 'must be an HTTP path starting with "/", e.g. /healthz' })
    .default("/healthz"),
  instances: count(1, 10_000).default(2),
  capacityRps: z.number().positive().default(100),
  peakRps: z.number().min(0).optional(),
  tier: count(0, 3).default(2),
  rto: duration().default(900_000),
  rpo: duration().default(0),
  durability: z.enum(["strict", "available"]).default("strict"),
  downtimeCostPerHour: z.number().min(0).optional(),
  dependencies: z.array(name("dependency")).default([]),
  slos: z.array(sloSchema).min(1, { error: "a service needs at least one SLO scenario" }),
  fallback: z
    .strictObject({
      command: command(),
      routes: z
        .array(
          route().refine((r) => /^(GET|HEAD|OPTIONS) /.test(r), {
            error: (iss) =>
              `a fallback is read-only (it reads the local replica alone): use GET, HEAD or OPTIONS routes; got ${JSON.stringify(iss.input)}`,
          }),
        )
        .min(1),
      instances: count(1, 10_000).default(1),
    })
    .optional(),
});

export const servicesSchema = z
  .array(serviceSchema)
  .min(1, { error: "at least one service is needed under services:" });

const providerSchema = z.strictObject({
  name: name("provider"),
  availability: availabilityPercent(),
  costPerMonth: z.number().min(0).optional(),
});

export const dependenciesSchema = z
  .array(
    z.strictObject({
      name: name("dependency"),
      providers: z
        .array(providerSchema)
        .min(1, { error: "a dependency needs at least one provider with its availability" }),
    }),
  )
  .default([]);

export const notificationsSchema = z
  .array(
    z.strictObject({
      name: name("channel"),
      kind: z.enum(["webhook", "email"]),
      providers: z
        .array(
          z.strictObject({
            name: name("provider"),
            availability: availabilityPercent().default(99.9),
            url: z.url().optional(),
            host: z.string().optional(),
            port: count(1, 65_535).optional(),
          }),
        )
        .min(1, { error: "a notification channel needs at least one provider" }),
    }),
  )
  .default([]);

/** Reliability of one kind of component: any two of availability, MTBF and MTTR. */
const reliabilitySchema = z.strictObject({
  availability: availabilityPercent().optional(),
  mtbf: duration().optional(),
  mttr: duration().optional(),
});

export const COMPONENT_KINDS = ["instance", "router", "database", "zone", "region", "provider"] as const;
export type ComponentKind = (typeof COMPONENT_KINDS)[number];

export const componentsSchema = z
  .strictObject({
    instance: reliabilitySchema.optional(),
    router: reliabilitySchema.optional(),
    database: reliabilitySchema.optional(),
    zone: reliabilitySchema.optional(),
    region: reliabilitySchema.optional(),
    provider: reliabilitySchema.optional(),
  })
  .default({});

export const costsSchema = z
  .strictObject({
    instancePerMonth: z.number().min(0).optional(),
    routerPerMonth: z.number().min(0).optional(),
    databasePerMonth: z.number().min(0).optional(),
  })
  .default({});

export const failoverSchema = z
  .strictObject({
    detection: duration().default(3_000),
    promotion: duration().default(2_000),
    failback: z.enum(["automatic", "manual"]).default("automatic"),
    failbackAfter: duration().default(60_000),
    manualFailback: z.array(count(0, 65_534)).default([]),
    startupGrace: duration().default(60_000),
  })
  .default({
    detection: 3_000,
    promotion: 2_000,
    failback: "automatic",
    failbackAfter: 60_000,
    manualFailback: [],
    startupGrace: 60_000,
  });

const ROUTER_DEFAULTS = {
  perRegion: 2,
  tenantHeader: "X-Tenant",
  maxInFlightPerCell: 1_000,
  tryTimeout: 10_000,
  deadline: 30_000,
  maxAttempts: 3,
  lastKnownGoodTtl: 7 * 86_400_000,
};
export const routersSchema = z
  .strictObject({
    perRegion: count(1, 1_000).default(ROUTER_DEFAULTS.perRegion),
    tenantHeader: z
      .string()
      .regex(/^[A-Za-z0-9-]{1,64}$/, { error: "must be an HTTP header name such as X-Tenant" })
      .default(ROUTER_DEFAULTS.tenantHeader),
    tenantPathPrefix: z
      .string()
      .regex(/^\/[A-Za-z0-9._-]+\/$/, {
        error: 'must be a path prefix such as "/t/" (the tenant follows it)',
      })
      .optional(),
    maxInFlightPerCell: count(1, 1_000_000).default(ROUTER_DEFAULTS.maxInFlightPerCell),
    tryTimeout: duration().default(ROUTER_DEFAULTS.tryTimeout),
    deadline: duration().default(ROUTER_DEFAULTS.deadline),
    maxAttempts: count(1, 10).default(ROUTER_DEFAULTS.maxAttempts),
    lastKnownGoodTtl: duration().default(ROUTER_DEFAULTS.lastKnownGoodTtl),
  })
  .default(ROUTER_DEFAULTS);

export const loadSchema = z.strictObject({ tenants: count(1).default(1_000) }).default({ tenants: 1_000 });

export const objectivesSchema = z.strictObject({ blastRadius: sharePercent().optional() }).default({});

/** The top-level sections and their schemas, parsed one by one. */
export const SECTIONS = {
  version: z.literal(1, { error: "must be 1 (the only topology format version so far)" }).default(1),
  name: name("topology").optional(),
  regions: regionsSchema,
  cells: cellsSchema,
  routers: routersSchema,
  services: servicesSchema,
  dependencies: dependenciesSchema,
  notifications: notificationsSchema,
  components: componentsSchema,
  costs: costsSchema,
  failover: failoverSchema,
  load: loadSchema,
  objectives: objectivesSchema,
} as const;

export type SectionName = keyof typeof SECTIONS;
export type RawTopology = { [K in SectionName]: z.output<(typeof SECTIONS)[K]> };
export type RawRegion = z.output<typeof regionSchema>;
export type RawService = z.output<typeof serviceSchema>;
