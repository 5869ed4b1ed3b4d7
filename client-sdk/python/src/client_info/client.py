"""`Client`: one channel to the server, the token and default metadata added to every call
(the raw stubs' calls too), a default deadline for unary calls, and the common calls as methods
that retry only what is safe to retry (`retry.py`). Mirrors the Rust SDK's `Client`.

Imports `errors`, `retry` and `watch` of the package, and the generated `clientinfo.v1`.
"""

from __future__ import annotations

import uuid
from typing import (
    Any,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

import grpc
from google.protobuf import field_mask_pb2

from clientinfo.v1 import (
    client_info_service_pb2,
    client_info_service_pb2_grpc,
    contact_binding_service_pb2,
    contact_binding_service_pb2_grpc,
    contact_pb2,
    contact_search_service_pb2,
    contact_search_service_pb2_grpc,
    contacts_service_pb2,
    contacts_service_pb2_grpc,
    interaction_pb2,
    interactions_service_pb2,
    interactions_service_pb2_grpc,
    search_pb2,
)

from . import retry as _retry
from .retry import RetryPolicy, RetryThrottle
from .watch import SessionWatch, WatchOptions

T = TypeVar("T")

#: A fixed token, or a function asked for the token before each call (and each reconnection of
#: a stream), for tokens that expire and are refreshed.
TokenSource = Union[str, Callable[[], str]]

#: The default deadline of unary calls, in seconds.
DEFAULT_TIMEOUT = 10.0

# gRPC's reconnect backoff when the server cannot be reached: from 100 ms up to 5 s (gRPC's own
# default waits 1 s first and up to 120 s, longer than a retry waits, so a call would still fail
# fast after the server came back).
_CHANNEL_OPTIONS: Tuple[Tuple[str, Any], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 5000),
    # HTTP/2 keepalive pings, also while idle, so a dead connection is noticed and replaced.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
)


def attribute_key(key: str, value: str, source: str = "") -> interactions_service_pb2.IdentificationKey:
    """An identification key: the contact attribute `key` holds exactly `value` (what the caller
    typed in the IVR, for example); `source` names where it came from in the match reason."""
    return interactions_service_pb2.IdentificationKey(
        attribute=contact_pb2.Attribute(key=key, value=value), source=source
    )


def email_key(address: str, source: str = "") -> interactions_service_pb2.IdentificationKey:
    """An identification key: an e-mail address of the contact (compared without case)."""
    return interactions_service_pb2.IdentificationKey(email=address, source=source)


def contact_id_key(contact_id: int, source: str = "") -> interactions_service_pb2.IdentificationKey:
    """An identification key: the contact's id, when routing already knows it."""
    return interactions_service_pb2.IdentificationKey(contact_id=contact_id, source=source)


class _CallDetails(NamedTuple):
    method: str
    timeout: Optional[float]
    metadata: Optional[Tuple[Tuple[str, Union[str, bytes]], ...]]
    credentials: Optional[grpc.CallCredentials]
    wait_for_ready: Optional[bool]
    compression: Optional[grpc.Compression]


class _ClientCallDetails(_CallDetails, grpc.ClientCallDetails):
    """`grpc.ClientCallDetails` with the fields the interceptor sets."""


class _AuthInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds `authorization: Bearer <token>` (asked per call) and the client's metadata to every
    call, and the default deadline to calls with a single response that set none (a stream's
    response has no deadline: it is meant to stay open)."""

    def __init__(
        self,
        token: Optional[TokenSource],
        metadata: Sequence[Tuple[str, str]],
        timeout: Optional[float],
    ) -> None:
        self._token = token
        self._metadata = tuple(metadata)
        self._timeout = timeout

    def _details(self, details: grpc.ClientCallDetails, single_response: bool) -> _ClientCallDetails:
        metadata = list(details.metadata or ())
        names = {name for name, _ in metadata}
        metadata += [(k, v) for k, v in self._metadata if k not in names]
        if self._token is not None and "authorization" not in names:
            token = self._token() if callable(self._token) else self._token
            metadata.append(("authorization", f"Bearer {token}"))
        timeout = details.timeout
        if timeout is None and single_response:
            timeout = self._timeout
        return _ClientCallDetails(
            details.method,
            timeout,
            tuple(metadata),
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details, True), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details, False), request)

    def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._details(client_call_details, True), request_iterator)

    def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._details(client_call_details, False), request_iterator)


class Client:
    """A connection to client-info.

    `url` is `http://host:port` (plaintext) or `https://host:port` (TLS: the system's roots, or
    `ca_certificate`, a PEM; `identity` = (certificate chain PEM, private key PEM) for mTLS).
    `token` is a fixed token or a function asked per call. `timeout` is each unary call's
    default deadline in seconds (every method takes its own `timeout=`). `retry` applies to
    idempotent calls only. Use as a context manager, or call `close()`.
    """

    def __init__(
        self,
        url: str,
        *,
        token: Optional[TokenSource] = None,
        ca_certificate: Optional[bytes] = None,
        identity: Optional[Tuple[bytes, bytes]] = None,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy = RetryPolicy(),
        metadata: Optional[Mapping[str, str]] = None,
        channel_options: Sequence[Tuple[str, Any]] = (),
    ) -> None:
        if url.startswith("http://"):
            self._secure = False
        elif url.startswith("https://"):
            self._secure = True
        else:
            raise ValueError(f"the URL must start with http:// or https://, not {url!r}")
        if (ca_certificate is not None or identity is not None) and not self._secure:
            raise ValueError("a CA certificate or a client identity needs an https:// URL")
        self.url = url
        self._target = url.split("://", 1)[1].rstrip("/")
        self._token = token
        self._ca = ca_certificate
        self._identity = identity
        self._timeout = timeout
        self._metadata = tuple((k.lower(), v) for k, v in (metadata or {}).items())
        self._options = _CHANNEL_OPTIONS + tuple(channel_options)
        self.retry_policy = retry
        self._throttle = RetryThrottle()
        self._channel = self.new_channel()
        #: The generated stubs over this client's channel: every call carries the token, the
        #: metadata and (unary calls) the default deadline.
        self.interactions = interactions_service_pb2_grpc.InteractionsServiceStub(self._channel)
        self.client_info = client_info_service_pb2_grpc.ClientInfoServiceStub(self._channel)
        self.contact_search = contact_search_service_pb2_grpc.ContactSearchServiceStub(self._channel)
        self.contact_binding = contact_binding_service_pb2_grpc.ContactBindingServiceStub(
            self._channel
        )
        self.contacts = contacts_service_pb2_grpc.ContactsServiceStub(self._channel)

    def new_channel(self) -> grpc.Channel:
        """A new channel (its own connection) with this client's settings; the caller closes it."""
        if self._secure:
            key, chain = (self._identity[1], self._identity[0]) if self._identity else (None, None)
            credentials = grpc.ssl_channel_credentials(
                root_certificates=self._ca, private_key=key, certificate_chain=chain
            )
            channel = grpc.secure_channel(self._target, credentials, options=self._options)
        else:
            channel = grpc.insecure_channel(self._target, options=self._options)
        return grpc.intercept_channel(
            channel, _AuthInterceptor(self._token, self._metadata, self._timeout)
        )

    @property
    def channel(self) -> grpc.Channel:
        """The channel (with the token interceptor), for stubs of your own."""
        return self._channel

    @property
    def refreshes_tokens(self) -> bool:
        """True when the token comes from a function (a stream may resume with a fresh one)."""
        return callable(self._token)

    def close(self) -> None:
        """Closes the channel; calls in progress are cancelled."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, idempotent: bool, attempt: Callable[[], T]) -> T:
        return _retry.run(self.retry_policy, self._throttle, idempotent, attempt)

    # --- Interactions (routing: `interactions.route`) ---

    def offer_interaction(
        self, request: interactions_service_pb2.OfferInteractionRequest, *, timeout: Optional[float] = None
    ) -> interactions_service_pb2.OfferInteractionResponse:
        """Offers a call or chat as given (retried: the interaction id is the idempotency key)."""
        return self._run(True, lambda: self.interactions.OfferInteraction(request, timeout=timeout))

    def offer_call(
        self,
        interaction_id: str,
        number: str,
        agent_user_id: int,
        *,
        hidden: bool = False,
        direction: interaction_pb2.InteractionDirection.ValueType = interaction_pb2.INTERACTION_DIRECTION_INBOUND,
        queue: Optional[Tuple[str, str]] = None,
        member: Optional[Tuple[str, str]] = None,
        variables: Iterable[Tuple[str, str]] = (),
        identification_keys: Iterable[interactions_service_pb2.IdentificationKey] = (),
        timeout: Optional[float] = None,
    ) -> interactions_service_pb2.OfferInteractionResponse:
        """Offers a call from `number` (as the network delivered it) to an agent and identifies
        the caller. `queue` and `member` are (id, name) and (id, description)."""
        return self.offer_interaction(
            _offer(
                interaction_id,
                interaction_pb2.INTERACTION_KIND_CALL,
                direction,
                interaction_pb2.ClientDestination(
                    call=interaction_pb2.CallerNumber(number=number, hidden=hidden)
                ),
                agent_user_id,
                queue,
                member,
                variables,
                identification_keys,
            ),
            timeout=timeout,
        )

    def offer_chat(
        self,
        interaction_id: str,
        protocol: str,
        external_user_id: str,
        agent_user_id: int,
        *,
        display_name: str = "",
        direction: interaction_pb2.InteractionDirection.ValueType = interaction_pb2.INTERACTION_DIRECTION_INBOUND,
        queue: Optional[Tuple[str, str]] = None,
        member: Optional[Tuple[str, str]] = None,
        variables: Iterable[Tuple[str, str]] = (),
        identification_keys: Iterable[interactions_service_pb2.IdentificationKey] = (),
        timeout: Optional[float] = None,
    ) -> interactions_service_pb2.OfferInteractionResponse:
        """Offers a chat from a messaging identity (`telegram`, `42`) to an agent."""
        return self.offer_interaction(
            _offer(
                interaction_id,
                interaction_pb2.INTERACTION_KIND_CHAT,
                direction,
                interaction_pb2.ClientDestination(
                    chat=interaction_pb2.ChatIdentity(
                        protocol=protocol,
                        external_user_id=external_user_id,
                        display_name=display_name,
                    )
                ),
                agent_user_id,
                queue,
                member,
                variables,
                identification_keys,
            ),
            timeout=timeout,
        )

    def accept_interaction(
        self, interaction_id: str, agent_user_id: int, *, timeout: Optional[float] = None
    ) -> interactions_service_pb2.AcceptInteractionResponse:
        """Records that the agent answered (never retried)."""
        request = interactions_service_pb2.AcceptInteractionRequest(
            interaction_id=interaction_id, agent_user_id=agent_user_id
        )
        return self._run(False, lambda: self.interactions.AcceptInteraction(request, timeout=timeout))

    def close_interaction(
        self, interaction_id: str, *, timeout: Optional[float] = None
    ) -> interactions_service_pb2.CloseInteractionResponse:
        """Records that the interaction ended (never retried)."""
        request = interactions_service_pb2.CloseInteractionRequest(interaction_id=interaction_id)
        return self._run(False, lambda: self.interactions.CloseInteraction(request, timeout=timeout))

    # --- The agent's panel (`interactions.handle`) ---

    def get_client_info(
        self,
        interaction_id: str,
        *,
        candidate_page_size: int = 0,
        candidate_page_token: str = "",
        timeout: Optional[float] = None,
    ) -> interaction_pb2.ClientInfoPanel:
        """The panel of an interaction offered to the calling agent: who is on the line
        (`identification`, `candidates`, `bound_contact`, `history`)."""
        request = client_info_service_pb2.GetClientInfoRequest(
            interaction_id=interaction_id,
            candidate_page_size=candidate_page_size,
            candidate_page_token=candidate_page_token,
        )
        return self._run(True, lambda: self.client_info.GetClientInfo(request, timeout=timeout)).panel

    def select_contact(
        self,
        interaction_id: str,
        contact_id: int,
        *,
        relink_channel: bool = False,
        timeout: Optional[float] = None,
    ) -> interaction_pb2.ClientInfoPanel:
        """Binds the interaction to a contact (retried: selecting the bound contact again changes
        nothing); chats: `relink_channel` also moves the chat's identity. Returns the panel."""
        request = contact_binding_service_pb2.SelectContactRequest(
            interaction_id=interaction_id, contact_id=contact_id, relink_channel=relink_channel
        )
        return self._run(True, lambda: self.contact_binding.SelectContact(request, timeout=timeout)).panel

    def unbind_contact(
        self, interaction_id: str, *, timeout: Optional[float] = None
    ) -> interaction_pb2.ClientInfoPanel:
        """Removes the interaction's binding (idempotent, retried). Returns the panel."""
        request = contact_binding_service_pb2.UnbindContactRequest(interaction_id=interaction_id)
        return self._run(True, lambda: self.contact_binding.UnbindContact(request, timeout=timeout)).panel

    # --- Search and read ---

    def search(
        self,
        *,
        name: str = "",
        destination: str = "",
        attributes: Union[Mapping[str, str], Iterable[Tuple[str, str]]] = (),
        messaging: Optional[Tuple[str, str]] = None,
        any_condition: bool = False,
        labels: Iterable[str] = (),
        owner_id: int = 0,
        interaction_id: str = "",
        page_size: int = 0,
        page_token: str = "",
        timeout: Optional[float] = None,
    ) -> contact_search_service_pb2.SearchContactsResponse:
        """One page of contacts matching a name (typo-tolerant), a destination (a number in any
        format, an e-mail), attributes and/or a messaging identity (protocol, id); all must match
        unless `any_condition`. Pass the response's `next_page_token` for the next page, or use
        `search_all`."""
        request = _search_request(
            name, destination, attributes, messaging, any_condition, labels, owner_id,
            interaction_id, page_size, page_token,
        )
        return self._run(True, lambda: self.contact_search.SearchContacts(request, timeout=timeout))

    def search_all(
        self,
        *,
        name: str = "",
        destination: str = "",
        attributes: Union[Mapping[str, str], Iterable[Tuple[str, str]]] = (),
        messaging: Optional[Tuple[str, str]] = None,
        any_condition: bool = False,
        labels: Iterable[str] = (),
        owner_id: int = 0,
        interaction_id: str = "",
        page_size: int = 0,
        timeout: Optional[float] = None,
    ) -> Iterator[search_pb2.SearchHit]:
        """Every hit of a search, best first; each next page is fetched when the previous one has
        been read."""
        attributes = list(attributes.items()) if isinstance(attributes, Mapping) else list(attributes)
        labels = list(labels)
        token = ""
        while True:
            page = self.search(
                name=name, destination=destination, attributes=attributes, messaging=messaging,
                any_condition=any_condition, labels=labels, owner_id=owner_id,
                interaction_id=interaction_id, page_size=page_size, page_token=token,
                timeout=timeout,
            )
            yield from page.hits
            token = page.next_page_token
            if not token:
                return

    def get_contact(self, contact_id: int, *, timeout: Optional[float] = None) -> contact_pb2.Contact:
        """One contact's full card (`contacts.read`)."""
        request = contact_search_service_pb2.GetContactRequest(contact_id=contact_id)
        return self._run(True, lambda: self.contact_search.GetContact(request, timeout=timeout)).contact

    # --- Create and edit ---

    def create_contact(
        self,
        display_name: str,
        *,
        request_id: Optional[str] = None,
        interaction_id: str = "",
        time_zone: str = "",
        owner_id: int = 0,
        labels: Iterable[str] = (),
        description: str = "",
        attributes: Union[Mapping[str, str], Iterable[Tuple[str, str]]] = (),
        phones: Iterable[str] = (),
        emails: Iterable[str] = (),
        messaging: Iterable[Tuple[str, str, str]] = (),
        link_caller_number: bool = False,
        timeout: Optional[float] = None,
    ) -> contact_binding_service_pb2.CreateContactResponse:
        """Creates a contact (`contacts.write`), or adds one from the agent's accepted interaction
        (`interaction_id`; a `request_id` is required then). With a `request_id` a repeat returns
        the same contact (`created` false), so the call is retried; without one it never is.
        `messaging` holds (protocol, external user id, display name)."""
        communications = (
            [contact_pb2.CommunicationInput(phone=contact_pb2.PhoneInput(number=n)) for n in phones]
            + [contact_pb2.CommunicationInput(email=contact_pb2.EmailInput(address=a)) for a in emails]
            + [
                contact_pb2.CommunicationInput(
                    messaging_channel=contact_pb2.MessagingChannelInput(
                        protocol=p, external_user_id=u, display_name=d
                    )
                )
                for p, u, d in messaging
            ]
        )
        request = contact_binding_service_pb2.CreateContactRequest(
            request_id=request_id or "",
            interaction_id=interaction_id,
            display_name=display_name,
            time_zone=time_zone,
            owner_id=owner_id,
            labels=list(labels),
            description=description,
            attributes=_attributes(attributes),
            communications=communications,
            link_caller_number=link_caller_number,
        )
        return self._run(
            request_id is not None,
            lambda: self.contact_binding.CreateContact(request, timeout=timeout),
        )

    def update_contact(
        self,
        contact_id: int,
        expected_version: int,
        *,
        display_name: Optional[str] = None,
        description: Optional[str] = None,
        time_zone: Optional[str] = None,
        owner_id: Optional[int] = None,
        labels: Optional[Iterable[str]] = None,
        attributes: Optional[Union[Mapping[str, str], Iterable[Tuple[str, str]]]] = None,
        timeout: Optional[float] = None,
    ) -> contact_pb2.Contact:
        """Changes the fields given (the field mask is built from them) of the contact at
        `expected_version`; a stale version raises ABORTED with `Reason.CONTACT_VERSION_MISMATCH`
        (metadata `current_version`): reload, decide again. Never retried."""
        paths = [
            path
            for path, value in (
                ("display_name", display_name),
                ("description", description),
                ("time_zone", time_zone),
                ("owner_id", owner_id),
                ("labels", labels),
                ("attributes", attributes),
            )
            if value is not None
        ]
        request = contacts_service_pb2.UpdateContactRequest(
            contact_id=contact_id,
            expected_version=expected_version,
            update_mask=field_mask_pb2.FieldMask(paths=paths),
            display_name=display_name or "",
            description=description or "",
            time_zone=time_zone or "",
            owner_id=owner_id or 0,
            labels=list(labels or ()),
            attributes=_attributes(attributes or ()),
        )
        return self._run(False, lambda: self.contacts.UpdateContact(request, timeout=timeout)).contact

    # --- The agent's session stream ---

    def watch_session(self, options: Optional[WatchOptions] = None) -> SessionWatch:
        """The calling agent's session: a snapshot, then every event exactly once and in order,
        reconnecting and resuming after the last sequence yielded (see `WatchOptions`), also
        across server restarts; on OUT_OF_RANGE it starts over with a new snapshot. Raises
        `ClientError` only for what reconnecting cannot fix (a bad token, a missing permission).
        `cancel()` on the result (from any thread) ends it."""
        return SessionWatch(self, options or WatchOptions())

    def watch_session_once(
        self, resume_after: int = 0, *, channel: Optional[grpc.Channel] = None
    ) -> Any:
        """The raw session stream: one call, no reconnection, no deadline. The result iterates
        over `WatchAgentSessionResponse` and is a `grpc.Call` (`cancel()`, `initial_metadata()`)."""
        stub = (
            self.client_info
            if channel is None
            else client_info_service_pb2_grpc.ClientInfoServiceStub(channel)
        )
        return stub.WatchAgentSession(
            client_info_service_pb2.WatchAgentSessionRequest(resume_after=resume_after)
        )


def new_request_id() -> str:
    """A fresh idempotency key for `create_contact(request_id=...)`."""
    return str(uuid.uuid4())


def _attributes(
    attributes: Union[Mapping[str, str], Iterable[Tuple[str, str]]],
) -> list[contact_pb2.Attribute]:
    pairs = attributes.items() if isinstance(attributes, Mapping) else attributes
    return [contact_pb2.Attribute(key=k, value=v) for k, v in pairs]


def _offer(
    interaction_id: str,
    kind: interaction_pb2.InteractionKind.ValueType,
    direction: interaction_pb2.InteractionDirection.ValueType,
    destination: interaction_pb2.ClientDestination,
    agent_user_id: int,
    queue: Optional[Tuple[str, str]],
    member: Optional[Tuple[str, str]],
    variables: Iterable[Tuple[str, str]],
    identification_keys: Iterable[interactions_service_pb2.IdentificationKey],
) -> interactions_service_pb2.OfferInteractionRequest:
    request = interactions_service_pb2.OfferInteractionRequest(
        interaction_id=interaction_id,
        kind=kind,
        direction=direction,
        destination=destination,
        agent_user_id=agent_user_id,
        variables=[interaction_pb2.Variable(key=k, value=v) for k, v in variables],
        identification_keys=list(identification_keys),
    )
    if queue is not None:
        request.queue.CopyFrom(interaction_pb2.Queue(id=queue[0], name=queue[1]))
    if member is not None:
        request.member.CopyFrom(interaction_pb2.QueueMember(id=member[0], description=member[1]))
    return request


def _search_request(
    name: str,
    destination: str,
    attributes: Union[Mapping[str, str], Iterable[Tuple[str, str]]],
    messaging: Optional[Tuple[str, str]],
    any_condition: bool,
    labels: Iterable[str],
    owner_id: int,
    interaction_id: str,
    page_size: int,
    page_token: str,
) -> contact_search_service_pb2.SearchContactsRequest:
    pairs = attributes.items() if isinstance(attributes, Mapping) else attributes
    request = contact_search_service_pb2.SearchContactsRequest(
        interaction_id=interaction_id,
        name=name,
        destination=destination,
        attributes=[search_pb2.AttributeCondition(key=k, value=v) for k, v in pairs],
        combine=search_pb2.SEARCH_COMBINE_ANY if any_condition else search_pb2.SEARCH_COMBINE_ALL,
        labels=list(labels),
        owner_id=owner_id,
        page_size=page_size,
        page_token=page_token,
    )
    if messaging is not None:
        request.messaging.CopyFrom(
            search_pb2.MessagingIdentity(protocol=messaging[0], external_user_id=messaging[1])
        )
    return request
