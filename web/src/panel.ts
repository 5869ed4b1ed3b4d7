// One interaction's Client info panel, after the user guide: the queue name, then the Client,
// Member description and Call variables blocks, each expandable and collapsible. The Client
// block shows the bound contact, or the candidates one by one (Next, a counter, why each
// matched), or that nobody was found; Search and Add tools; Select, Unbind and Open card. The
// Recent history block (when a contact is identified) shows the last interaction that ended,
// the count of the last 30 days and the others open now.
// Every action button is enabled exactly when the panel's allowed_actions says so.

import type { ContactView } from "../gen/clientinfo/v1/contact_pb";
import {
  type Candidate,
  type CandidateMatch,
  type ClientHistory,
  type ClientInfoPanel,
  IdentificationOutcome,
  InteractionDirection,
  InteractionKind,
  InteractionState,
  MatchRule,
  type RecentInteraction,
} from "../gen/clientinfo/v1/interaction_pb";
import { type FoundBy, SearchField, type SearchHit } from "../gen/clientinfo/v1/search_pb";
import { type Api, Code, codeOf, describe } from "./api";
import { contactView, type TabMemory, viewId, viewName } from "./card";
import { type Child, h, replace, uid } from "./dom";

/** What a panel needs from the page. */
export interface PanelContext {
  api: Api;
  tabs: TabMemory;
  /** Opens a contact's card in the card dialog. */
  openCard(view: ContactView, interactionId: string): void;
  /** Says something to screen-reader users (a polite live region). */
  announce(text: string): void;
}

type Block = "client" | "history" | "member" | "variables";
type Tool = "none" | "search" | "add";

const CANDIDATE_PAGE = 20;
const SEARCH_PAGE = 20;

const RULES: Record<MatchRule, string> = {
  [MatchRule.UNSPECIFIED]: "match",
  [MatchRule.E164]: "same number (E.164)",
  [MatchRule.NATIONAL_VARIANT]: "national variant of the number",
  [MatchRule.NATIONAL_NUMBER]: "same national number",
  [MatchRule.LAST_DIGITS]: "same last digits",
  [MatchRule.MESSAGING_IDENTITY]: "same messaging identity",
  [MatchRule.CONTACT_ID]: "contact named by routing",
  [MatchRule.ATTRIBUTE]: "attribute given by routing",
  [MatchRule.EMAIL]: "e-mail given by routing",
};

const FIELDS: Record<SearchField, string> = {
  [SearchField.UNSPECIFIED]: "Field",
  [SearchField.NAME]: "Name",
  [SearchField.PHONE]: "Phone",
  [SearchField.EMAIL]: "E-mail",
  [SearchField.MESSAGING]: "Messaging",
  [SearchField.ATTRIBUTE]: "Attribute",
};

function matchText(m: CandidateMatch): string {
  const c = m.communication;
  const what =
    c.case === "phone"
      ? `Phone ${c.value.number}`
      : c.case === "messagingChannel"
        ? `${c.value.protocol}: ${c.value.externalUserId}`
        : c.case === "email"
          ? `E-mail ${c.value.address}`
          : c.case === "attribute"
            ? `${c.value.key} ${c.value.value}`
            : m.rule === MatchRule.CONTACT_ID
              ? "Contact"
              : "Communication";
  return `${what}: ${RULES[m.rule] ?? "match"}, ${m.exact ? "exact" : "fallback"}`;
}

/** One interaction of the history in words: "Call, inbound, 5 Dec 14:02, Support, with Alice". */
function recentText(r: RecentInteraction): string {
  const kind = r.kind === InteractionKind.CHAT ? "Chat" : "Call";
  const direction = r.direction === InteractionDirection.OUTBOUND ? "outbound" : "inbound";
  const at = r.closedAt ?? r.offeredAt;
  const when = at ? new Date(Number(at.seconds) * 1000).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : "";
  return [`${kind}, ${direction}`, when, r.queue?.name ?? "", r.agent?.name ? `with ${r.agent.name}` : ""].filter(Boolean).join(", ");
}

/** The Recent history block's body. */
function historyBody(hist: ClientHistory): Child[] {
  const n = hist.interactionsLast30Days;
  return [
    h(
      "dl",
      { class: "history" },
      h("dt", {}, "Last contact"),
      h("dd", { "data-history": "last" }, hist.lastClosed ? recentText(hist.lastClosed) : "No earlier interaction"),
      h("dt", {}, "Last 30 days"),
      h("dd", { "data-history": "count" }, n === 1 ? "1 interaction" : `${n} interactions`),
      h("dt", {}, "Open now"),
      h("dd", { "data-history": "open" }, hist.openNow.length === 0 ? "None" : hist.openNow.map(recentText).join("; ")),
    ),
  ];
}

function foundByText(f: FoundBy): string {
  return `${FIELDS[f.field] ?? "Field"} ${f.exact ? "equals" : "contains"} ${f.value}`;
}

/** The interaction's title: who is on the line. */
function title(p: ClientInfoPanel): string {
  const d = p.destination?.destination;
  if (p.kind === InteractionKind.CHAT && d?.case === "chat") {
    const who = d.value.displayName || d.value.externalUserId;
    return `Chat with ${who} (${d.value.protocol})`;
  }
  if (d?.case === "call") {
    const number = d.value.hidden ? "a hidden number" : d.value.number;
    return p.direction === InteractionDirection.OUTBOUND ? `Call to ${number}` : `Call from ${number}`;
  }
  return `Interaction ${p.interactionId}`;
}

const STATES: Record<InteractionState, string> = {
  [InteractionState.UNSPECIFIED]: "Unknown",
  [InteractionState.OFFERED]: "Ringing",
  [InteractionState.ACCEPTED]: "Accepted",
  [InteractionState.CLOSED]: "Closed",
};

/** A labelled form field: the label names the control (so screen readers and tests find it). */
function field(label: string, control: HTMLInputElement | HTMLTextAreaElement, hint?: string): HTMLElement {
  control.id = control.id || uid("f");
  const hintId = hint ? uid("hint") : undefined;
  if (hintId) control.setAttribute("aria-describedby", hintId);
  return h(
    "div",
    { class: "field" },
    h("label", { for: control.id }, label),
    control,
    hint ? h("small", { id: hintId, class: "muted" }, hint) : null,
  );
}

/** Splits "a, b" into ["a", "b"]. */
function list(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** One interaction's panel and the agent's work in it (forms, results), kept across events. */
export class InteractionView {
  /** The element the panel renders into. */
  readonly root: HTMLElement;
  panel: ClientInfoPanel;
  private candidates: Candidate[];
  private candidateToken: string | undefined;
  private candidateIndex = 0;
  private tool: Tool = "none";
  private hits: SearchHit[] = [];
  private hitIndex = 0;
  private hitsMore = false;
  private hitsToken = "";
  private searched = false;
  private notice = "";
  private error = "";
  private formError = "";
  private busy = false;
  private collapsed = new Set<Block>();
  private generation = 0;
  private searchForm: HTMLFormElement | null = null;
  private addForm: HTMLFormElement | null = null;
  private addRequestId = "";
  private readonly titleId = uid("title");

  constructor(
    panel: ClientInfoPanel,
    private readonly ctx: PanelContext,
  ) {
    this.panel = panel;
    this.candidates = panel.candidates;
    this.root = h("article", {
      class: "interaction",
      "aria-labelledby": this.titleId,
      "data-interaction": panel.interactionId,
    });
    this.render();
  }

  /** The interaction id. */
  get id(): string {
    return this.panel.interactionId;
  }

  /** Takes a new panel (from the stream or an RPC); `token` is the next candidate page's. */
  setPanel(panel: ClientInfoPanel, token?: string): void {
    this.panel = panel;
    this.candidates = panel.candidates;
    this.candidateToken = token;
    const count = Math.max(this.candidates.length, 1);
    if (this.candidateIndex >= count) this.candidateIndex = 0;
    if (!panel.allowedActions?.search && this.tool === "search") this.tool = "none";
    if (!panel.allowedActions?.add && this.tool === "add") this.tool = "none";
    this.render();
  }

  /** Shows a line about what just changed (a binding, a relink) at the top of the panel. */
  setNotice(text: string): void {
    this.notice = text;
    this.render();
  }

  /** The contact ids this panel shows (bound, candidates, search hits). */
  contactIds(): bigint[] {
    const ids = [viewId(this.panel.boundContact), ...this.candidates.map((c) => viewId(c.contact)), ...this.hits.map((x) => viewId(x.contact))];
    return ids.filter((id): id is bigint => id !== null);
  }

  /** A name for a contact id this panel knows, else `contact #id`. */
  nameOf(id: bigint): string | null {
    const views = [this.panel.boundContact, ...this.candidates.map((c) => c.contact), ...this.hits.map((x) => x.contact)];
    const v = views.find((v) => viewId(v) === id);
    return v ? viewName(v) : null;
  }

  /** Puts a changed contact in place wherever this panel shows it. */
  replaceContact(view: ContactView): void {
    const id = viewId(view);
    if (id === null) return;
    let changed = false;
    if (viewId(this.panel.boundContact) === id) {
      this.panel.boundContact = view;
      changed = true;
    }
    for (const c of [...this.candidates, ...this.hits]) {
      if (viewId(c.contact) === id) {
        c.contact = view;
        changed = true;
      }
    }
    if (changed) this.render();
  }

  /** Drops a deleted contact from the search results (the panel itself is refreshed). */
  forgetContact(id: bigint): void {
    this.hits = this.hits.filter((x) => viewId(x.contact) !== id);
    this.hitIndex = Math.min(this.hitIndex, Math.max(this.hits.length - 1, 0));
    this.render();
  }

  /** Reads the panel again (after an event that changed it); late answers of older reads are dropped. */
  async refresh(): Promise<void> {
    const generation = ++this.generation;
    try {
      const r = await this.ctx.api.info.getClientInfo({ interactionId: this.id, candidatePageSize: CANDIDATE_PAGE });
      if (generation !== this.generation || !r.panel) return;
      this.setPanel(r.panel, r.nextCandidatePageToken);
    } catch (e) {
      if (generation !== this.generation || codeOf(e) === Code.NotFound) return;
      this.error = describe(e);
      this.render();
    }
  }

  private async act(what: () => Promise<void>): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    this.error = "";
    this.render();
    try {
      await what();
    } catch (e) {
      this.error = describe(e);
    } finally {
      this.busy = false;
      this.render();
    }
  }

  private async nextCandidate(): Promise<void> {
    const count = this.panel.identification?.candidateCount ?? this.candidates.length;
    const next = this.candidateIndex + 1;
    if (next < this.candidates.length) {
      this.candidateIndex = next;
    } else if (next < count) {
      await this.act(async () => {
        if (this.candidateToken === undefined) {
          // A panel from the stream carries the first page without a token: read it again.
          const r = await this.ctx.api.info.getClientInfo({ interactionId: this.id, candidatePageSize: CANDIDATE_PAGE });
          this.candidates = r.panel?.candidates ?? [];
          this.candidateToken = r.nextCandidatePageToken;
        }
        while (next >= this.candidates.length && this.candidateToken) {
          const r = await this.ctx.api.info.getClientInfo({
            interactionId: this.id,
            candidatePageSize: CANDIDATE_PAGE,
            candidatePageToken: this.candidateToken,
          });
          this.candidates = [...this.candidates, ...(r.panel?.candidates ?? [])];
          this.candidateToken = r.nextCandidatePageToken;
        }
        this.candidateIndex = next < this.candidates.length ? next : 0;
      });
    } else {
      this.candidateIndex = 0;
    }
    this.render();
  }

  private select(view: ContactView | undefined): Promise<void> {
    const contactId = viewId(view);
    if (contactId === null) return Promise.resolve();
    return this.act(async () => {
      const r = await this.ctx.api.binding.selectContact({ interactionId: this.id, contactId });
      this.tool = "none";
      if (r.panel) this.setPanel(r.panel);
      this.ctx.announce(`${viewName(view)} selected`);
    });
  }

  private unbind(): Promise<void> {
    return this.act(async () => {
      const r = await this.ctx.api.binding.unbindContact({ interactionId: this.id });
      if (r.panel) this.setPanel(r.panel);
      this.ctx.announce("Contact unbound");
    });
  }

  private openTool(tool: Tool): void {
    this.tool = this.tool === tool ? "none" : tool;
    this.formError = "";
    if (this.tool === "add") this.addRequestId = crypto.randomUUID();
    this.render();
    const form = this.tool === "search" ? this.searchForm : this.tool === "add" ? this.addForm : null;
    form?.querySelector<HTMLElement>("input")?.focus();
  }

  private buildSearchForm(): HTMLFormElement {
    const name = h("input", { type: "text", name: "name", autocomplete: "off" });
    const destination = h("input", { type: "text", name: "destination", autocomplete: "off" });
    const attributes = h("input", { type: "text", name: "attributes", autocomplete: "off" });
    const form = h(
      "form",
      { class: "tool", "aria-label": "Search contacts" },
      h("h4", {}, "Search contacts"),
      field("Name", name),
      field("Destination", destination, "A phone number or an e-mail address"),
      field("Attributes", attributes, "key=value, comma-separated; key=* for any value"),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Search"), h("button", { type: "button", onclick: () => this.openTool("search") }, "Back")),
    );
    this.keyControls(form, "search");
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const attrs = list(attributes.value).map((pair) => {
        const [key, ...rest] = pair.split("=");
        return { key: key.trim(), value: rest.join("=").trim() || "*" };
      });
      if (!name.value.trim() && !destination.value.trim() && attrs.length === 0) {
        this.formError = "Enter a name, a destination or an attribute to search by.";
        this.render();
        return;
      }
      void this.search({ name: name.value.trim(), destination: destination.value.trim(), attributes: attrs });
    });
    return form;
  }

  private search(query: { name: string; destination: string; attributes: { key: string; value: string }[] }, pageToken = ""): Promise<void> {
    return this.act(async () => {
      this.formError = "";
      try {
        const r = await this.ctx.api.search.searchContacts({ interactionId: this.id, ...query, pageSize: SEARCH_PAGE, pageToken });
        this.hits = pageToken ? [...this.hits, ...r.hits] : r.hits;
        if (!pageToken) this.hitIndex = 0;
        this.hitsMore = r.hasMore;
        this.hitsToken = r.nextPageToken;
        this.searched = true;
        this.lastQuery = query;
        this.ctx.announce(r.hits.length === 0 && !pageToken ? "No contact found" : `${this.hits.length}${r.hasMore ? " or more" : ""} found`);
      } catch (e) {
        this.formError = describe(e);
      }
    });
  }
  private lastQuery: { name: string; destination: string; attributes: { key: string; value: string }[] } | null = null;

  private async nextHit(): Promise<void> {
    if (this.hitIndex + 1 < this.hits.length) {
      this.hitIndex += 1;
      this.render();
    } else if (this.hitsMore && this.lastQuery) {
      const at = this.hits.length;
      await this.search(this.lastQuery, this.hitsToken);
      this.hitIndex = Math.min(at, this.hits.length - 1);
      this.render();
    } else {
      this.hitIndex = 0;
      this.render();
    }
  }

  private buildAddForm(): HTMLFormElement {
    const zones = uid("zones");
    const labelList = uid("labels");
    const name = h("input", { type: "text", name: "name", required: true, maxlength: 200, autocomplete: "off" });
    const zone = h("input", { type: "text", name: "timezone", list: zones, autocomplete: "off" });
    const owner = h("input", { type: "text", name: "owner", inputmode: "numeric", pattern: "[0-9]*", autocomplete: "off" });
    const labels = h("input", { type: "text", name: "labels", list: labelList, autocomplete: "off" });
    const description = h("textarea", { name: "description", rows: 3, maxlength: 4000 });
    const linkNumber = h("input", { type: "checkbox", name: "link-number" });
    linkNumber.id = uid("f");
    const labelOptions = h("datalist", { id: labelList });
    labels.addEventListener("input", async () => {
      // Autocomplete the label being typed (after the last comma), most used first.
      const prefix = labels.value.split(",").pop()?.trim() ?? "";
      try {
        const r = await this.ctx.api.search.listLabels({ prefix, pageSize: 10 });
        const done = labels.value.includes(",") ? labels.value.slice(0, labels.value.lastIndexOf(",") + 1) + " " : "";
        labelOptions.replaceChildren(...r.labels.map((l) => h("option", { value: done + l.label })));
      } catch {
        // Autocomplete is a convenience: typing on works without it.
      }
    });
    const isCall = this.panel.kind === InteractionKind.CALL;
    const form = h(
      "form",
      { class: "tool", "aria-label": "Add a contact" },
      h("h4", {}, "Add a contact"),
      field("Name", name),
      field("Time zone", zone, "For example Europe/London"),
      h("datalist", { id: zones }, Intl.supportedValuesOf("timeZone").map((z) => h("option", { value: z }))),
      field("Owner", owner, "A user id; empty: you"),
      field("Labels", labels, "Comma-separated; existing or new"),
      labelOptions,
      field("Description", description),
      isCall ? h("div", { class: "field check" }, linkNumber, h("label", { for: linkNumber.id }, "Also link the caller's number to the contact")) : null,
      h("div", { class: "actions" }, h("button", { type: "button", onclick: () => this.openTool("add") }, "Cancel"), h("button", { type: "submit", class: "primary" }, "Add")),
    );
    this.keyControls(form, "add");
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const ownerText = owner.value.trim();
      if (ownerText && !/^[0-9]+$/.test(ownerText)) {
        this.formError = "Owner: a user id is a number";
        this.render();
        return;
      }
      void this.act(async () => {
        this.formError = "";
        try {
          const r = await this.ctx.api.binding.createContact({
            requestId: this.addRequestId,
            interactionId: this.id,
            displayName: name.value.trim(),
            timeZone: zone.value.trim(),
            ownerId: ownerText ? BigInt(ownerText) : 0n,
            labels: list(labels.value),
            description: description.value,
            linkCallerNumber: isCall && linkNumber.checked,
          });
          form.reset();
          this.tool = "none";
          this.ctx.announce(`${r.contact?.displayName ?? "Contact"} added`);
          await this.refresh();
        } catch (e) {
          this.formError = describe(e);
        }
      });
    });
    return form;
  }

  /** Keys a form's controls, so that focus stays in them when the panel is drawn again. */
  private keyControls(form: HTMLFormElement, kind: string): void {
    form.querySelectorAll<HTMLInputElement | HTMLTextAreaElement | HTMLButtonElement>("input, textarea, button").forEach((el) => {
      el.dataset.key = `${this.id}-${kind}-${el.name || el.textContent}`;
    });
  }

  private block(which: Block, heading: string, body: Child[]): HTMLElement {
    const bodyId = `${this.titleId}-${which}`;
    const open = !this.collapsed.has(which);
    return h(
      "section",
      { class: `block block-${which}`, "aria-labelledby": `${bodyId}-h` },
      h(
        "h3",
        {},
        h(
          "button",
          {
            type: "button",
            class: "toggle",
            id: `${bodyId}-h`,
            "data-key": `${this.id}-toggle-${which}`,
            "aria-expanded": open ? "true" : "false",
            "aria-controls": bodyId,
            onclick: () => {
              if (open) this.collapsed.add(which);
              else this.collapsed.delete(which);
              this.render();
            },
          },
          h("span", { class: "chevron", "aria-hidden": "true" }, open ? "▾" : "▸"),
          heading,
        ),
      ),
      h("div", { class: "block-body", id: bodyId, hidden: !open }, body),
    );
  }

  private button(label: string, enabled: boolean, key: string, onclick: () => void, primary = false, why = ""): HTMLButtonElement {
    return h(
      "button",
      {
        type: "button",
        class: primary ? "primary" : "",
        "data-key": `${this.id}-${key}`,
        disabled: !enabled || this.busy,
        title: !enabled && why ? why : null,
        onclick,
      },
      label,
    );
  }

  private clientBlock(): Child[] {
    const p = this.panel;
    const allowed = p.allowedActions;
    const notAccepted = p.state === InteractionState.ACCEPTED ? "" : "Available once the interaction is accepted";
    const key = (k: string) => `${this.id}-${k}`;
    const out: Child[] = [];
    const boundId = viewId(p.boundContact);
    if (p.boundContact && boundId !== null) {
      out.push(
        h(
          "div",
          { class: "contact bound", "aria-label": "Bound contact" },
          h("p", { class: "status-line" }, "Bound contact"),
          contactView(p.boundContact, key(`bound-${boundId}`), this.ctx.tabs, () => this.render()),
          h(
            "div",
            { class: "actions" },
            this.button("Open card", true, "open-bound", () => this.ctx.openCard(p.boundContact as ContactView, this.id)),
            this.button("Unbind", allowed?.unbind ?? false, "unbind", () => void this.unbind(), false, notAccepted),
          ),
        ),
      );
    } else if (this.candidates.length > 0) {
      const count = Math.max(p.identification?.candidateCount ?? 0, this.candidates.length);
      const c = this.candidates[Math.min(this.candidateIndex, this.candidates.length - 1)];
      const cid = viewId(c.contact);
      out.push(
        h(
          "div",
          { class: "contact candidate", "aria-label": "Found contact" },
          h(
            "div",
            { class: "counter-row" },
            h("p", { class: "status-line counter", "aria-live": "polite" }, count > 1 ? `Contact ${this.candidateIndex + 1} of ${count}` : "Contact found"),
            count > 1 ? this.button("Next", true, "next-candidate", () => void this.nextCandidate()) : null,
          ),
          h("p", { class: "why" }, h("span", { class: "muted" }, "Why it matched: "), c.matches.map(matchText).join("; ") || (c.exact ? "exact" : "fallback")),
          contactView(c.contact, key(`cand-${cid}`), this.ctx.tabs, () => this.render()),
          h(
            "div",
            { class: "actions" },
            this.button("Select", allowed?.select ?? false, "select-candidate", () => void this.select(c.contact), true, notAccepted),
            this.button("Open card", true, "open-candidate", () => this.ctx.openCard(c.contact as ContactView, this.id)),
          ),
        ),
      );
    } else {
      const reason = p.identification?.reason;
      const number = p.identification?.normalizedNumber;
      out.push(
        h(
          "div",
          { class: "contact none" },
          h("p", { class: "status-line" }, "No contact found"),
          h("p", { class: "muted" }, [number ? `For ${number}` : "", reason ? `(${reason})` : ""].filter(Boolean).join(" ")),
        ),
      );
    }
    out.push(
      h(
        "div",
        { class: "actions tools" },
        this.button("Search", allowed?.search ?? false, "search", () => this.openTool("search"), false, notAccepted),
        this.button("Add", allowed?.add ?? false, "add", () => this.openTool("add"), false, notAccepted),
      ),
    );
    if (this.tool === "search") {
      this.searchForm ??= this.buildSearchForm();
      out.push(this.searchForm);
      if (this.formError) out.push(h("p", { class: "error", role: "alert" }, this.formError));
      if (this.searched) out.push(this.results());
    } else if (this.tool === "add") {
      this.addForm ??= this.buildAddForm();
      out.push(this.addForm);
      if (this.formError) out.push(h("p", { class: "error", role: "alert" }, this.formError));
    }
    return out;
  }

  private results(): HTMLElement {
    const allowed = this.panel.allowedActions;
    if (this.hits.length === 0) {
      return h("section", { class: "results", "aria-label": "Search results" }, h("p", { class: "status-line" }, "No contact found"));
    }
    const hit = this.hits[Math.min(this.hitIndex, this.hits.length - 1)];
    const id = viewId(hit.contact);
    const total = `${this.hits.length}${this.hitsMore ? "+" : ""}`;
    const isBound = id !== null && id === viewId(this.panel.boundContact);
    return h(
      "section",
      { class: "results contact", "aria-label": "Search results" },
      h(
        "div",
        { class: "counter-row" },
        h("p", { class: "status-line counter", "aria-live": "polite" }, `Result ${this.hitIndex + 1} of ${total}`),
        this.hits.length > 1 || this.hitsMore ? this.button("Next", true, "next-hit", () => void this.nextHit()) : null,
      ),
      h("p", { class: "why" }, h("span", { class: "muted" }, "Found by: "), hit.foundBy.map(foundByText).join("; ")),
      contactView(hit.contact, `${this.id}-hit-${id}`, this.ctx.tabs, () => this.render()),
      h(
        "div",
        { class: "actions" },
        this.button(isBound ? "Selected" : "Select", (allowed?.select ?? false) && !isBound, "select-hit", () => void this.select(hit.contact), true),
        this.button("Open card", true, "open-hit", () => this.ctx.openCard(hit.contact as ContactView, this.id)),
      ),
    );
  }

  /** Draws the panel again from its state, keeping the keyboard focus where it was. */
  render(): void {
    const p = this.panel;
    const stateClass = `state state-${STATES[p.state]?.toLowerCase() ?? "unknown"}`;
    const kind = p.kind === InteractionKind.CHAT ? "Chat" : "Call";
    const direction = p.direction === InteractionDirection.OUTBOUND ? "outbound" : "inbound";
    const member = p.memberDescription
      ? [h("p", { class: "description" }, p.memberDescription)]
      : [h("p", { class: "muted" }, "No member description")];
    const variables =
      p.variables.length === 0
        ? [h("p", { class: "muted" }, "No call variables")]
        : [h("dl", { class: "variables" }, p.variables.map((v) => [h("dt", {}, v.key), h("dd", {}, v.value)]))];
    const ambiguous = p.identification?.outcome === IdentificationOutcome.AMBIGUOUS && !p.boundContact;
    replace(this.root, [
      h(
        "header",
        {},
        p.queue?.name ? h("p", { class: "queue" }, h("span", { class: "muted" }, "Queue "), h("strong", {}, p.queue.name)) : null,
        h("h2", { id: this.titleId }, title(p)),
        h(
          "p",
          { class: "meta" },
          h("span", { class: stateClass }, STATES[p.state] ?? "Unknown"),
          ` ${kind}, ${direction}`,
          ambiguous ? " · several contacts match" : "",
          this.busy ? h("span", { class: "muted" }, " · working…") : null,
        ),
      ),
      this.notice ? h("p", { class: "notice", role: "status" }, this.notice) : null,
      this.error ? h("p", { class: "error", role: "alert" }, this.error) : null,
      this.block("client", "Client", this.clientBlock()),
      p.history ? this.block("history", "Recent history", historyBody(p.history)) : null,
      this.block("member", "Member description", member),
      this.block("variables", "Call variables", variables),
    ]);
  }
}
