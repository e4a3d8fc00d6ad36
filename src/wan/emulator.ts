import { Forward, type ForwardOptions } from "./forward.js";
import { Link, type LinkOptions, type LinkState, linkName } from "./link.js";

/** `addForward` options: a forward's options, with the link given as a `Link` or its name (`a~b`, either order). */
export interface AddForwardOptions extends Omit<ForwardOptions, "link"> {
  link: Link | string;
}

/**
 * The local world's WAN: one `Link` per region pair and the `Forward` proxies that carry cross-region
 * connections over them. Chaos steps reach a link through `link(a, b)`; the dashboard reads `snapshot()`.
 */
export class WanEmulator {
  readonly #links = new Map<string, Link>();
  readonly #forwards = new Set<Forward>();
  #closing: Promise<void> | undefined;

  /**
   * Creates the link between regions `a` and `b` (order does not matter) with a one-way latency;
   * other settings default to no jitter, no loss and a 200 ms retransmission timeout.
   * Throws a RangeError if the pair already has a link.
   */
  addLink(a: string, b: string, latencyMs: number, options?: Omit<LinkOptions, "latencyMs">): Link {
    const name = linkName(a, b);
    if (this.#links.has(name))
      throw new RangeError(
        `The WAN already has a link ${name}; change it with link("${a}", "${b}") instead.`,
      );
    const link = new Link(a, b, { ...options, latencyMs });
    this.#links.set(name, link);
    return link;
  }

  /** The link between regions `a` and `b` (either order). Throws a RangeError naming the pair if there is none. */
  link(a: string, b: string): Link {
    const name = linkName(a, b);
    const link = this.#links.get(name);
    if (link === undefined)
      throw new RangeError(`The WAN has no link ${name}; add it with addLink("${a}", "${b}", latencyMs).`);
    return link;
  }

  /** Every link, in the order they were added. */
  links(): Link[] {
    return [...this.#links.values()];
  }

  /** Every forward that is still open, in the order they were added. */
  forwards(): Forward[] {
    return [...this.#forwards].filter((f) => !f.closed);
  }

  /** The state of every link, JSON-able. */
  snapshot(): LinkState[] {
    return this.links().map((link) => link.state());
  }

  /**
   * Starts a forward over one of this emulator's links and resolves once it listens. The listen
   * address defaults to `127.0.0.1` on a free port. Rejects if the link is unknown or the emulator is closed.
   */
  async addForward(options: AddForwardOptions): Promise<Forward> {
    if (this.#closing !== undefined) throw new Error("The WAN emulator is closed; create a new one.");
    const link = this.#resolve(options.link);
    const forward = await Forward.listen({ ...options, link });
    if (this.#closing !== undefined) {
      await forward.close();
      throw new Error("The WAN emulator was closed while the forward was starting.");
    }
    this.#forwards.add(forward);
    return forward;
  }

  /** Closes every forward (releasing their ports and sockets); links keep their state. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= Promise.all([...this.#forwards].map((f) => f.close())).then(() => undefined);
    return this.#closing;
  }

  #resolve(link: Link | string): Link {
    if (typeof link !== "string") {
      if (this.#links.get(link.name) !== link)
        throw new RangeError(
          `Link ${link.name} does not belong to this WAN emulator; create it with addLink.`,
        );
      return link;
    }
    const parts = link.split("~");
    const [a, b] = parts;
    if (parts.length !== 2 || a === undefined || b === undefined)
      throw new RangeError(
        `A link name is two regions joined by "~" (e.g. "us-east~eu-west"), got "${link}".`,
      );
    return this.link(a, b);
  }
}
