// A contact as the panel shows it: the full card (labels, attributes, description, and the
// Phones / Messaging / E-mails tabs) or, for an agent without CRM access, the summary.

import type { Contact, ContactView } from "../gen/clientinfo/v1/contact_pb";
import { type Child, h, uid } from "./dom";

/** The three communication tabs of a card, in the user guide's order. */
export type CommTab = "phones" | "messaging" | "emails";
const TABS: [CommTab, string][] = [
  ["phones", "Phones"],
  ["messaging", "Messaging"],
  ["emails", "E-mails"],
];

/** The contact's id and name, whichever view it is. */
export function viewId(view: ContactView | undefined): bigint | null {
  switch (view?.view.case) {
    case "contact":
    case "summary":
      return view.view.value.id;
    default:
      return null;
  }
}

/** The display name, whichever view. */
export function viewName(view: ContactView | undefined): string {
  switch (view?.view.case) {
    case "contact":
    case "summary":
      return view.view.value.displayName;
    default:
      return "";
  }
}

/** Remembers which communication tab each card shows, across re-renders. */
export class TabMemory {
  private tabs = new Map<string, CommTab>();
  get(key: string): CommTab {
    return this.tabs.get(key) ?? "phones";
  }
  set(key: string, tab: CommTab): void {
    this.tabs.set(key, tab);
  }
}

function labels(list: string[]): Child {
  if (list.length === 0) return h("p", { class: "muted" }, "No labels");
  return h("ul", { class: "labels", "aria-label": "Labels" }, list.map((l) => h("li", { class: "label" }, l)));
}

function tabPanel(contact: Contact, tab: CommTab): Child {
  const empty = (what: string) => h("p", { class: "muted" }, `No ${what}`);
  switch (tab) {
    case "phones":
      return contact.phones.length === 0
        ? empty("phone numbers")
        : h("ul", {}, contact.phones.map((p) => h("li", {}, p.number, p.e164 && p.e164 !== p.number ? h("span", { class: "muted" }, ` (${p.e164})`) : null)));
    case "messaging":
      return contact.messagingChannels.length === 0
        ? empty("messaging identities")
        : h("ul", {}, contact.messagingChannels.map((m) => h("li", {}, `${m.protocol}: ${m.externalUserId}`, m.displayName ? h("span", { class: "muted" }, ` (${m.displayName})`) : null)));
    case "emails":
      return contact.emails.length === 0 ? empty("e-mail addresses") : h("ul", {}, contact.emails.map((e) => h("li", {}, e.address)));
  }
}

/** The Phones / Messaging / E-mails tabs (WAI-ARIA tabs: arrow keys move between them). */
function communications(contact: Contact, key: string, memory: TabMemory, rerender: () => void): Child {
  const current = memory.get(key);
  const panelId = uid("comm");
  const counts: Record<CommTab, number> = {
    phones: contact.phones.length,
    messaging: contact.messagingChannels.length,
    emails: contact.emails.length,
  };
  const select = (tab: CommTab) => {
    memory.set(key, tab);
    rerender();
  };
  const tabs = TABS.map(([tab, title], i) =>
    h(
      "button",
      {
        type: "button",
        role: "tab",
        class: "tab",
        "data-key": `${key}-tab-${tab}`,
        "aria-selected": tab === current ? "true" : "false",
        "aria-controls": panelId,
        tabindex: tab === current ? 0 : -1,
        onclick: () => select(tab),
        onkeydown: (e: Event) => {
          const k = (e as KeyboardEvent).key;
          const step = k === "ArrowRight" ? 1 : k === "ArrowLeft" ? -1 : 0;
          if (step === 0) return;
          e.preventDefault();
          select(TABS[(i + step + TABS.length) % TABS.length][0]);
        },
      },
      `${title} (${counts[tab]})`,
    ),
  );
  return h(
    "div",
    { class: "comms" },
    h("div", { role: "tablist", "aria-label": "Communication options" }, tabs),
    h("div", { role: "tabpanel", id: panelId, class: "tabpanel", "aria-label": TABS.find(([t]) => t === current)?.[1] ?? "" }, tabPanel(contact, current)),
  );
}

/** The full card's sections. */
export function fullCard(contact: Contact, key: string, memory: TabMemory, rerender: () => void): Child[] {
  return [
    h("h4", { class: "contact-name" }, contact.displayName, contact.readOnly ? h("span", { class: "badge" }, "read-only") : null),
    contact.timeZone || contact.owner
      ? h(
          "p",
          { class: "muted" },
          [contact.timeZone ? `Time zone ${contact.timeZone}` : "", contact.owner ? `Owner ${contact.owner.name}` : ""].filter(Boolean).join(" · "),
        )
      : null,
    h("h5", {}, "Labels"),
    labels(contact.labels),
    h("h5", {}, "Attributes"),
    contact.attributes.length === 0
      ? h("p", { class: "muted" }, "No attributes")
      : h("dl", { class: "attributes" }, contact.attributes.map((a) => [h("dt", {}, a.key), h("dd", {}, a.value)])),
    h("h5", {}, "Description"),
    contact.description ? h("p", { class: "description" }, contact.description) : h("p", { class: "muted" }, "No description"),
    h("h5", {}, "Communication options"),
    communications(contact, key, memory, rerender),
  ];
}

/** A contact as the caller may see it. */
export function contactView(view: ContactView | undefined, key: string, memory: TabMemory, rerender: () => void): Child[] {
  switch (view?.view.case) {
    case "contact":
      return fullCard(view.view.value, key, memory, rerender);
    case "summary":
      return [
        h("h4", { class: "contact-name" }, view.view.value.displayName),
        h("h5", {}, "Labels"),
        labels(view.view.value.labels),
        h("p", { class: "muted" }, "Summary only (no CRM access): Open card shows the card read-only."),
      ];
    default:
      return [h("p", { class: "muted" }, "Contact not available")];
  }
}
