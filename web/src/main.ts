// The agent panel: sign in with a pasted token, watch the session, draw one panel per open
// interaction, apply every event of the stream as it comes, and open contact cards.

import type { ContactView } from "../gen/clientinfo/v1/contact_pb";
import type { AgentEvent } from "../gen/clientinfo/v1/event_pb";
import type { ClientInfoPanel } from "../gen/clientinfo/v1/interaction_pb";
import { type Api, apiBaseUrl, Code, codeOf, connect, describe, extractToken, tokenFacts } from "./api";
import { fullCard, TabMemory, viewId, viewName } from "./card";
import { append, h } from "./dom";
import { InteractionView, type PanelContext } from "./panel";
import { watchSession } from "./session";

const TOKEN_KEY = "client-info-token";

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page lacks #${id}`);
  return el as T;
}

class App implements PanelContext {
  api!: Api;
  readonly tabs = new TabMemory();
  private views = new Map<string, InteractionView>();
  private stop: AbortController | null = null;
  private readonly list = byId<HTMLDivElement>("interactions");
  private readonly status = byId<HTMLParagraphElement>("status");
  private readonly banner = byId<HTMLDivElement>("banner");
  private readonly dialog = byId<HTMLDialogElement>("card-dialog");
  private lostSince: number | null = null;
  private attempts = 0;

  constructor() {
    byId<HTMLFormElement>("sign-in").addEventListener("submit", (e) => {
      e.preventDefault();
      void this.signIn(byId<HTMLTextAreaElement>("token").value);
    });
    byId("sign-out").addEventListener("click", () => this.signOut(""));
    byId("card-close").addEventListener("click", () => this.dialog.close());
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) void this.signIn(saved);
  }

  announce(text: string): void {
    const a = byId("announcer");
    a.textContent = "";
    // A new text node each time, so that the same words are announced again.
    setTimeout(() => (a.textContent = text), 50);
  }

  private async signIn(pasted: string): Promise<void> {
    const error = byId<HTMLParagraphElement>("sign-in-error");
    const token = extractToken(pasted);
    if (!token) {
      error.textContent = "That is not a token: paste the whole JWT (three parts separated by dots).";
      error.hidden = false;
      byId("token").focus();
      return;
    }
    error.hidden = true;
    const facts = tokenFacts(token);
    this.api = connect(await apiBaseUrl(), token);
    sessionStorage.setItem(TOKEN_KEY, token);
    const who = byId("who");
    who.textContent = facts
      ? `User ${facts.userId} · ${facts.permissions.join(", ") || "no permissions"}${facts.expiresAt ? ` · until ${facts.expiresAt.toLocaleTimeString()}` : ""}`
      : "";
    who.hidden = !facts;
    byId("sign-in").hidden = true;
    byId("session").hidden = false;
    byId("sign-out").hidden = false;
    this.setStatus("Connecting…");
    this.stop = new AbortController();
    void watchSession(
      this.api,
      {
        connected: () => this.connected(),
        event: (e) => this.apply(e),
        lost: (reason) => this.lost(reason),
        fatal: (reason, code) => this.fatal(reason, code),
      },
      this.stop.signal,
    );
  }

  private signOut(message: string): void {
    this.stop?.abort();
    this.stop = null;
    sessionStorage.removeItem(TOKEN_KEY);
    this.views.clear();
    this.list.replaceChildren();
    this.banner.hidden = true;
    byId("session").hidden = true;
    byId("sign-out").hidden = true;
    byId("who").hidden = true;
    byId("sign-in").hidden = false;
    this.setStatus("");
    const error = byId<HTMLParagraphElement>("sign-in-error");
    error.textContent = message;
    error.hidden = !message;
    byId("token").focus();
  }

  private setStatus(text: string, live = false): void {
    this.status.textContent = text;
    this.status.classList.toggle("live", live);
  }

  private connected(): void {
    this.attempts = 0;
    if (this.lostSince !== null) {
      this.lostSince = null;
      this.banner.hidden = true;
      this.announce("Connection restored");
    }
    this.setStatus("Live", true);
  }

  private lost(reason: string): void {
    this.attempts += 1;
    this.lostSince ??= Date.now();
    this.banner.textContent = `Connection lost (${reason}). Reconnecting… attempt ${this.attempts}; nothing is missed, the panel resumes where it stopped.`;
    this.banner.hidden = false;
    this.setStatus("Reconnecting…");
  }

  private fatal(reason: string, code: Code): void {
    if (code === Code.Unauthenticated || code === Code.PermissionDenied) {
      this.signOut(`Signed out: ${reason}`);
    } else {
      this.banner.textContent = `The session stopped: ${reason}`;
      this.banner.hidden = false;
      this.setStatus("Stopped");
    }
  }

  /** Adds or updates an interaction's panel. */
  private upsert(panel: ClientInfoPanel): InteractionView {
    const existing = this.views.get(panel.interactionId);
    if (existing) {
      existing.setPanel(panel);
      return existing;
    }
    const view = new InteractionView(panel, this);
    this.views.set(panel.interactionId, view);
    // Newest first.
    this.list.prepend(view.root);
    this.updateEmpty();
    return view;
  }

  private remove(id: string, why: string): void {
    const view = this.views.get(id);
    if (!view) return;
    view.root.remove();
    this.views.delete(id);
    this.updateEmpty();
    this.announce(why);
  }

  private updateEmpty(): void {
    byId("empty").hidden = this.views.size > 0;
  }

  /** The panels that show contact `id`. */
  private showing(id: bigint): InteractionView[] {
    return [...this.views.values()].filter((v) => v.contactIds().includes(id));
  }

  private nameOf(id: bigint): string {
    for (const v of this.views.values()) {
      const name = v.nameOf(id);
      if (name) return name;
    }
    return `contact #${id}`;
  }

  private apply(event: AgentEvent): void {
    const e = event.event;
    switch (e.case) {
      case "snapshot": {
        const ids = new Set(e.value.panels.map((p) => p.interactionId));
        for (const id of [...this.views.keys()]) if (!ids.has(id)) this.remove(id, "");
        // Oldest first, so that prepending leaves the newest on top.
        for (const p of [...e.value.panels].reverse()) this.upsert(p);
        break;
      }
      case "interactionOffered":
        if (e.value.panel) {
          const view = this.upsert(e.value.panel);
          this.announce(`New: ${view.root.querySelector("h2")?.textContent ?? "interaction"}`);
        }
        break;
      case "interactionAccepted":
        void this.views.get(e.value.interactionId)?.refresh();
        break;
      case "contactIdentified":
        void this.views.get(e.value.interactionId)?.refresh();
        break;
      case "contactCreated":
        this.views.get(e.value.interactionId)?.setNotice(`Contact ${viewName(e.value.contact)} created`);
        break;
      case "contactBound": {
        const view = this.views.get(e.value.interactionId);
        const by = e.value.boundBy ? ` by ${e.value.boundBy.name}` : " automatically";
        view?.setNotice(`Bound to ${viewName(e.value.contact)}${by}`);
        void view?.refresh();
        break;
      }
      case "contactUnbound": {
        const view = this.views.get(e.value.interactionId);
        const by = e.value.unboundBy ? ` by ${e.value.unboundBy.name}` : "";
        view?.setNotice(`Unbound from ${this.nameOf(e.value.contactId)}${by}`);
        void view?.refresh();
        break;
      }
      case "channelRelinked": {
        const { messagingChannel: m, fromContactId: from, toContactId: to } = e.value;
        const text = `${m?.protocol ?? "Messaging"}: ${m?.externalUserId ?? ""} moved from ${this.nameOf(from)} to ${this.nameOf(to)}`;
        const concerned = new Set([...this.showing(from), ...this.showing(to)]);
        const own = this.views.get(e.value.interactionId);
        if (own) concerned.add(own);
        for (const v of concerned) {
          v.setNotice(text);
          void v.refresh();
        }
        break;
      }
      case "contactUpdated":
        if (e.value.contact) {
          const updated = e.value.contact;
          for (const v of this.views.values()) v.replaceContact(updated);
        }
        break;
      case "contactDeleted":
        for (const v of this.showing(e.value.contactId)) {
          v.forgetContact(e.value.contactId);
          void v.refresh();
        }
        break;
      case "interactionClosed":
        this.remove(e.value.interactionId, "An interaction ended");
        break;
      case "interactionTransferredAway":
        this.remove(e.value.interactionId, `An interaction was transferred to ${e.value.toAgent?.name ?? "another agent"}`);
        break;
      case "heartbeat":
      case undefined:
        break;
    }
  }

  /**
   * Opens a contact's card: the full card through GetContact for an agent with CRM access, else
   * read-only through the panel's signed link (GetContactByLink), minting a new link with
   * CreateReadOnlyLink when that one has expired.
   */
  openCard(view: ContactView, interactionId: string): void {
    const body = byId("card-body");
    body.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    if (!this.dialog.open) this.dialog.showModal();
    const id = viewId(view);
    const load = async () => {
      if (view.view.case === "contact") {
        const r = await this.api.search.getContact({ contactId: view.view.value.id });
        return r.contact;
      }
      if (view.view.case !== "summary" || id === null) return undefined;
      let link = view.view.value.readOnlyLink;
      try {
        if (!link) throw new Error("no link");
        return (await this.api.binding.getContactByLink({ link })).contact;
      } catch (e) {
        if (link && codeOf(e) !== Code.PermissionDenied) throw e;
        link = (await this.api.binding.createReadOnlyLink({ contactId: id, interactionId })).link;
        return (await this.api.binding.getContactByLink({ link })).contact;
      }
    };
    load().then(
      (contact) => {
        const render = () => {
          body.replaceChildren();
          append(
            body,
            contact
              ? [
                  contact.readOnly ? h("p", { class: "notice" }, "Read-only: opened through a link, without CRM access.") : null,
                  fullCard(contact, `dialog-${contact.id}`, this.tabs, render),
                ]
              : [h("p", { class: "error" }, "No card to show")],
          );
        };
        render();
      },
      (e) => body.replaceChildren(h("p", { class: "error", role: "alert" }, describe(e))),
    );
  }
}

new App();
