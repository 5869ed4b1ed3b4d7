// The client: the token, metadata, deadline and read-your-writes position on every call, the
// raw service clients over one transport, and the convenience methods for the common calls,
// each retried only when repeating it cannot do twice what it does once.
//
// Imports `errors`, `retry` and `watch`; knows no transport (the entry points, index.ts for
// browsers and node.ts for Node, hand one in).

import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { ClientInfoService } from "./gen/clientinfo/v1/client_info_service_pb.js";
import type { CreateContactRequestSchema } from "./gen/clientinfo/v1/contact_binding_service_pb.js";
import { ContactBindingService } from "./gen/clientinfo/v1/contact_binding_service_pb.js";
import type { Contact } from "./gen/clientinfo/v1/contact_pb.js";
import type { SearchContactsRequestSchema, SearchContactsResponse } from "./gen/clientinfo/v1/contact_search_service_pb.js";
import { ContactSearchService } from "./gen/clientinfo/v1/contact_search_service_pb.js";
import { ContactsService } from "./gen/clientinfo/v1/contacts_service_pb.js";
import type { AgentEvent } from "./gen/clientinfo/v1/event_pb.js";
import { InteractionDirection, InteractionKind, type ClientInfoPanel } from "./gen/clientinfo/v1/interaction_pb.js";
import type {
  IdentificationKeySchema,
  OfferInteractionRequestSchema,
  OfferInteractionResponse,
} from "./gen/clientinfo/v1/interactions_service_pb.js";
import { InteractionsService } from "./gen/clientinfo/v1/interactions_service_pb.js";
import type { SearchHit } from "./gen/clientinfo/v1/search_pb.js";
import { ClientInfoError } from "./errors.js";
import { DEFAULT_RETRY_POLICY, RetryThrottle, runWithRetry, type Idempotency, type RetryPolicy } from "./retry.js";
import { watchSession, type WatchOptions } from "./watch.js";

/** Default deadline of a unary call, in ms (the Rust SDK's too). */
export const DEFAULT_TIMEOUT_MS = 10_000;

/** Asked for the token before every call, so a long-lived client can refresh it. */
export type TokenProvider = () => string | Promise<string>;

/** What every client takes, in Node and in browsers. */
export interface ClientOptions {
  /** `https://host:port` (TLS) or `http://host:port` (plaintext). */
  baseUrl: string;
  /** Sent as `authorization: Bearer <token>`: fixed, or a function asked before each call. */
  token?: string | TokenProvider;
  /** Deadline of each unary call in ms (default 10,000); session streams have none. */
  timeoutMs?: number;
  /** How idempotent calls are retried (default 3 attempts, backoff from 100 ms to 2 s). */
  retry?: Partial<RetryPolicy>;
  /** Metadata sent with every call (a call's own headers win). */
  headers?: Record<string, string>;
  /** More interceptors (tracing, logging), run inside the SDK's own. */
  interceptors?: Interceptor[];
}

/** A call's own deadline, metadata and cancellation. */
export interface CallOptions {
  /** This call's deadline in ms, instead of the client's. */
  timeoutMs?: number;
  /** Metadata sent with this call only. */
  headers?: Record<string, string>;
  /** Cancels the call (and its retries). */
  signal?: AbortSignal;
}

/** Makes the transport the client's calls run on, with the SDK's interceptors. */
export type TransportFactory = (setup: { interceptors: Interceptor[]; defaultTimeoutMs: number }) => Transport;

/** Response header: the primary's WAL position after the call's work. */
const POSITION_HEADER = "x-client-info-lsn";
/** Request header: the WAL position the call's reads must show. */
const MIN_POSITION_HEADER = "x-client-info-min-lsn";

/** A WAL position as PostgreSQL writes it (`16/B374D848`), as a number. */
function parsePosition(s: string | null): bigint | undefined {
  const m = s?.match(/^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/);
  return m ? (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`) : undefined;
}

function formatPosition(p: bigint): string {
  return `${(p >> 32n).toString(16).toUpperCase()}/${(p & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** Variables in order: pairs, or an object (its keys' order). */
export type Variables = ReadonlyArray<{ key: string; value: string }> | Readonly<Record<string, string>>;

function pairs(v: Variables | undefined): { key: string; value: string }[] {
  if (v === undefined) return [];
  if (Array.isArray(v)) return v.map(({ key, value }) => ({ key, value }));
  return Object.entries(v as Record<string, string>).map(([key, value]) => ({ key, value }));
}

/** A key routing collected before the agent (tried before the number, in order). */
export type IdentificationKeyInit = MessageInitShape<typeof IdentificationKeySchema>;

/** An attribute of the contact with exactly this value, e.g. what the caller typed in the IVR. */
export function attributeKey(key: string, value: string, source = ""): IdentificationKeyInit {
  return { key: { case: "attribute", value: { key, value } }, source };
}

/** An e-mail address of the contact (compared without case). */
export function emailKey(email: string, source = ""): IdentificationKeyInit {
  return { key: { case: "email", value: email }, source };
}

/** The contact's id, when routing already knows it. */
export function contactIdKey(contactId: bigint | number, source = ""): IdentificationKeyInit {
  return { key: { case: "contactId", value: BigInt(contactId) }, source };
}

/** What an offer of a call or a chat says besides the client's destination. */
export interface OfferCommon {
  /** Routing's own interaction id: the idempotency key. */
  interactionId: string;
  /** The agent it is offered to. */
  agentUserId: bigint | number;
  /** Default inbound. */
  direction?: InteractionDirection;
  /** The queue it came from. */
  queue?: { id: string; name: string };
  /** The queue member. */
  member?: { id: string; description: string };
  /** Call variables, in order. */
  variables?: Variables;
  /** Keys routing collected (IVR, bot), tried before the number or chat identity. */
  identificationKeys?: IdentificationKeyInit[];
}

/** A call: the caller's number as the network delivered it (`hidden` when withheld). */
export interface CallOffer extends OfferCommon {
  number: string;
}

/** A chat: the client's messaging identity. */
export interface ChatOffer extends OfferCommon {
  protocol: string;
  externalUserId: string;
  displayName?: string;
}

/** A page of search conditions (any of them; see the server's README, "Search"). */
export type SearchQuery = Omit<MessageInitShape<typeof SearchContactsRequestSchema>, "pageToken" | "$typeName">;

/** A new contact: the raw request (set `requestId` to make it safe to retry). */
export type NewContact = Omit<MessageInitShape<typeof CreateContactRequestSchema>, "$typeName">;

/** A contact created by {@link ClientInfoClient.createContact}. */
export interface Created {
  /** The card. */
  contact: Contact;
  /** False when a repeat of the same `requestId` returned the contact created earlier. */
  created: boolean;
}

/** The fields an update changes: only the ones given (the field mask is built from them). */
export interface ContactChanges {
  displayName?: string;
  description?: string;
  /** IANA time zone; empty to clear. */
  timeZone?: string;
  ownerId?: bigint | number;
  /** Replace the labels. */
  labels?: string[];
  /** Replace the attributes (in order). */
  attributes?: Variables;
}

const CHANGE_PATHS: Record<keyof ContactChanges, string> = {
  displayName: "display_name",
  description: "description",
  timeZone: "time_zone",
  ownerId: "owner_id",
  labels: "labels",
  attributes: "attributes",
};

/**
 * A client of client-info. Make one with `createClientInfoClient` from `@client-info/sdk`
 * (browsers: gRPC-Web over fetch) or `@client-info/sdk/node` (Node: gRPC over HTTP/2, or
 * gRPC-Web); this constructor is for a transport of your own.
 *
 * The convenience methods reject with {@link ClientInfoError}. The raw service clients
 * (`interactions`, `clientInfo`, `contactSearch`, `contactBinding`, `contacts`) run on the same
 * transport with the same token, metadata and default deadline, for every other call; they
 * are not retried and reject with connect's `ConnectError` (`ClientInfoError.from(e)` reads it).
 */
export class ClientInfoClient {
  /** InteractionsService: offer, accept, close (routing). */
  readonly interactions: Client<typeof InteractionsService>;
  /** ClientInfoService: the panel and the session stream (agents). */
  readonly clientInfo: Client<typeof ClientInfoService>;
  /** ContactSearchService: search, get, labels. */
  readonly contactSearch: Client<typeof ContactSearchService>;
  /** ContactBindingService: create, select, unbind, links. */
  readonly contactBinding: Client<typeof ContactBindingService>;
  /** ContactsService: update, delete, import, audit, changes, merge, erase. */
  readonly contacts: Client<typeof ContactsService>;
  /** The retry policy in force. */
  readonly retryPolicy: RetryPolicy;

  private readonly throttle = new RetryThrottle();
  private readonly makeTransport: () => Transport;
  private readonly refreshesTokens: boolean;

  constructor(options: ClientOptions, transportFactory: TransportFactory) {
    checkUrl(options.baseUrl);
    const token = options.token;
    const headers = Object.entries(options.headers ?? {});
    let position = 0n; // the highest WAL position a response carried
    const sdk: Interceptor = (next) => async (req) => {
      for (const [k, v] of headers) {
        if (!req.header.has(k)) req.header.set(k, v);
      }
      if (token !== undefined) {
        const value = typeof token === "function" ? await token() : token;
        req.header.set("authorization", `Bearer ${value}`);
      }
      // The caller's own header, when it set one, wins.
      if (position > 0n && !req.header.has(MIN_POSITION_HEADER)) {
        req.header.set(MIN_POSITION_HEADER, formatPosition(position));
      }
      const res = await next(req);
      const p = parsePosition(res.header.get(POSITION_HEADER));
      if (p !== undefined && p > position) position = p;
      return res;
    };
    const setup = {
      interceptors: [sdk, ...(options.interceptors ?? [])],
      defaultTimeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    };
    this.makeTransport = () => transportFactory(setup);
    const transport = this.makeTransport();
    this.interactions = createClient(InteractionsService, transport);
    this.clientInfo = createClient(ClientInfoService, transport);
    this.contactSearch = createClient(ContactSearchService, transport);
    this.contactBinding = createClient(ContactBindingService, transport);
    this.contacts = createClient(ContactsService, transport);
    this.retryPolicy = Object.freeze({ ...DEFAULT_RETRY_POLICY, ...options.retry });
    this.refreshesTokens = typeof token === "function";
  }

  private run<T>(idempotency: Idempotency, options: CallOptions | undefined, call: () => Promise<T>): Promise<T> {
    return runWithRetry(this.retryPolicy, this.throttle, idempotency, call, options?.signal);
  }

  /** Offers a call to an agent (routing, `interactions.route`). Retried: the id is the key. */
  offerCall(offer: CallOffer, options?: CallOptions): Promise<OfferInteractionResponse> {
    const hidden = offer.number === "hidden";
    return this.offer(offer, InteractionKind.CALL, { case: "call", value: { number: hidden ? "" : offer.number, hidden } }, options);
  }

  /** Offers a chat to an agent (routing, `interactions.route`). Retried: the id is the key. */
  offerChat(offer: ChatOffer, options?: CallOptions): Promise<OfferInteractionResponse> {
    const chat = { protocol: offer.protocol, externalUserId: offer.externalUserId, displayName: offer.displayName ?? "" };
    return this.offer(offer, InteractionKind.CHAT, { case: "chat", value: chat }, options);
  }

  private offer(
    offer: OfferCommon,
    kind: InteractionKind,
    destination: NonNullable<MessageInitShape<typeof OfferInteractionRequestSchema>["destination"]>["destination"],
    options?: CallOptions,
  ): Promise<OfferInteractionResponse> {
    const request: MessageInitShape<typeof OfferInteractionRequestSchema> = {
      interactionId: offer.interactionId,
      kind,
      direction: offer.direction ?? InteractionDirection.INBOUND,
      destination: { destination },
      agentUserId: BigInt(offer.agentUserId),
      queue: offer.queue,
      member: offer.member,
      variables: pairs(offer.variables),
      identificationKeys: offer.identificationKeys ?? [],
    };
    return this.run("idempotent", options, () => this.interactions.offerInteraction(request, options));
  }

  /** The agent answered (routing). Never retried. */
  async acceptInteraction(interactionId: string, agentUserId: bigint | number, options?: CallOptions): Promise<void> {
    const request = { interactionId, agentUserId: BigInt(agentUserId) };
    await this.run("not-idempotent", options, () => this.interactions.acceptInteraction(request, options));
  }

  /** The interaction ended (routing). Never retried. */
  async closeInteraction(interactionId: string, options?: CallOptions): Promise<void> {
    await this.run("not-idempotent", options, () => this.interactions.closeInteraction({ interactionId }, options));
  }

  /**
   * The Client info panel of an interaction, for its assigned agent: state, queue, variables,
   * the bound contact, the identification outcome and the first candidates
   * (`candidatePageSize`, default 20). Retried when it may help.
   */
  async getClientInfo(
    interactionId: string,
    options?: CallOptions & { candidatePageSize?: number },
  ): Promise<ClientInfoPanel> {
    const request = { interactionId, candidatePageSize: options?.candidatePageSize ?? 0 };
    const r = await this.run("idempotent", options, () => this.clientInfo.getClientInfo(request, options));
    return present(r.panel, "panel");
  }

  /** One page of a search (`pageToken` from the previous page's `nextPageToken`). */
  searchPage(query: SearchQuery, pageToken = "", options?: CallOptions): Promise<SearchContactsResponse> {
    return this.run("idempotent", options, () => this.contactSearch.searchContacts({ ...query, pageToken }, options));
  }

  /**
   * Every hit of a search, page after page (`query.pageSize` per page): the next page is
   * fetched when the previous one has been read, so stopping early costs nothing more.
   */
  async *searchContacts(query: SearchQuery, options?: CallOptions): AsyncGenerator<SearchHit> {
    let token = "";
    for (;;) {
      const page = await this.searchPage(query, token, options);
      yield* page.hits;
      if (!page.hasMore || page.nextPageToken === "") return;
      token = page.nextPageToken;
    }
  }

  /** The full card of a contact (`contacts.read`). Retried when it may help. */
  async getContact(contactId: bigint | number, options?: CallOptions): Promise<Contact> {
    const request = { contactId: BigInt(contactId) };
    const r = await this.run("idempotent", options, () => this.contactSearch.getContact(request, options));
    return present(r.contact, "contact");
  }

  /**
   * Creates a contact (`contacts.write`; or from the caller's accepted interaction with
   * `interactionId`). Retried only with a `requestId`: a repeat then returns the same contact
   * (`created: false`).
   */
  async createContact(contact: NewContact, options?: CallOptions): Promise<Created> {
    const idempotency = contact.requestId ? "idempotent" : "not-idempotent";
    const r = await this.run(idempotency, options, () => this.contactBinding.createContact(contact, options));
    return { contact: present(r.contact, "contact"), created: r.created };
  }

  /**
   * Changes the fields given in `changes` (the field mask is built from them) of the contact
   * at `expectedVersion`. A stale version rejects with ABORTED, reason
   * `CONTACT_VERSION_MISMATCH` (metadata `current_version`): reload, decide again. Never
   * retried.
   */
  async updateContact(
    contactId: bigint | number,
    expectedVersion: bigint | number,
    changes: ContactChanges,
    options?: CallOptions,
  ): Promise<Contact> {
    const keys = (Object.keys(CHANGE_PATHS) as (keyof ContactChanges)[]).filter((k) => changes[k] !== undefined);
    const request = {
      contactId: BigInt(contactId),
      expectedVersion: BigInt(expectedVersion),
      updateMask: { paths: keys.map((k) => CHANGE_PATHS[k]) },
      displayName: changes.displayName ?? "",
      description: changes.description ?? "",
      timeZone: changes.timeZone ?? "",
      ownerId: BigInt(changes.ownerId ?? 0),
      labels: changes.labels ?? [],
      attributes: pairs(changes.attributes),
    };
    const r = await this.run("not-idempotent", options, () => this.contacts.updateContact(request, options));
    return present(r.contact, "contact");
  }

  /**
   * Binds the assigned agent's accepted interaction to a contact (selecting another one
   * rebinds); `relinkChannel` moves a chat's identity to it. Returns the panel. Retried.
   */
  async selectContact(
    interactionId: string,
    contactId: bigint | number,
    options?: CallOptions & { relinkChannel?: boolean },
  ): Promise<ClientInfoPanel> {
    const request = { interactionId, contactId: BigInt(contactId), relinkChannel: options?.relinkChannel ?? false };
    const r = await this.run("idempotent", options, () => this.contactBinding.selectContact(request, options));
    return present(r.panel, "panel");
  }

  /** Removes the interaction's binding. Returns the panel. Retried (it is idempotent). */
  async unbindContact(interactionId: string, options?: CallOptions): Promise<ClientInfoPanel> {
    const r = await this.run("idempotent", options, () => this.contactBinding.unbindContact({ interactionId }, options));
    return present(r.panel, "panel");
  }

  /**
   * The calling agent's session (`interactions.handle`): a snapshot, then every event exactly
   * once and in order, as an async iterator. It reconnects by itself with jittered backoff and
   * resumes after the last sequence it yielded: after a dropped connection, a server restart,
   * a cut for reading too slowly, or a silent connection; a resume point older than the server
   * keeps starts over with a new snapshot. With a token provider, an expired token is replaced
   * and the stream resumes at once. It throws only what reconnecting cannot fix (a bad token,
   * a missing permission) and ends when you stop iterating or abort `options.signal`.
   */
  watchSession(options: WatchOptions = {}): AsyncGenerator<AgentEvent> {
    let client = this.clientInfo;
    return watchSession(
      {
        refreshesTokens: this.refreshesTokens,
        open: (resumeAfter, fresh, call) => {
          if (fresh) client = createClient(ClientInfoService, this.makeTransport());
          return client.watchAgentSession({ resumeAfter }, { ...call, timeoutMs: 0 });
        },
      },
      options,
    );
  }
}

function present<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new ClientInfoError(Code.Internal, `response without a ${what}`);
  return value;
}

function checkUrl(url: string): void {
  if (!/^https?:\/\/[^/]/.test(url)) {
    throw new TypeError(`baseUrl must start with http:// or https:// (got ${JSON.stringify(url)})`);
  }
}
