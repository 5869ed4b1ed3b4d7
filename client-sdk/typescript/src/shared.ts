// What both entry points export: the client, its errors and options, and every generated
// message and service descriptor of clientinfo.v1 (and google.rpc's error details).

export {
  ClientInfoClient,
  DEFAULT_TIMEOUT_MS,
  attributeKey,
  contactIdKey,
  emailKey,
  type CallOffer,
  type CallOptions,
  type ChatOffer,
  type ClientOptions,
  type ContactChanges,
  type Created,
  type IdentificationKeyInit,
  type NewContact,
  type OfferCommon,
  type SearchQuery,
  type TokenProvider,
  type TransportFactory,
  type Variables,
} from "./client.js";
export {
  ClientInfoError,
  KNOWN_REASONS,
  codeName,
  isKnownReason,
  type FieldViolation,
  type KnownReason,
  type PreconditionViolation,
  type Reason,
} from "./errors.js";
export { DEFAULT_RETRY_POLICY, NO_RETRIES, type RetryPolicy } from "./retry.js";
export { HEARTBEAT_HEADER, type WatchOptions } from "./watch.js";
export { Code, ConnectError } from "@connectrpc/connect";

export * from "./gen/clientinfo/v1/audit_pb.js";
export * from "./gen/clientinfo/v1/change_pb.js";
export * from "./gen/clientinfo/v1/client_info_service_pb.js";
export * from "./gen/clientinfo/v1/contact_binding_service_pb.js";
export * from "./gen/clientinfo/v1/contact_pb.js";
export * from "./gen/clientinfo/v1/contact_search_service_pb.js";
export * from "./gen/clientinfo/v1/contacts_service_pb.js";
export * from "./gen/clientinfo/v1/event_pb.js";
export * from "./gen/clientinfo/v1/interaction_pb.js";
export * from "./gen/clientinfo/v1/interactions_service_pb.js";
export * from "./gen/clientinfo/v1/merge_pb.js";
export * from "./gen/clientinfo/v1/search_pb.js";
export * from "./gen/google/rpc/error_details_pb.js";
