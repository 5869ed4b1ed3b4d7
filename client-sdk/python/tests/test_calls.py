"""Identify, search, create and edit through the SDK against the real server."""

from __future__ import annotations

import os
import uuid

import grpc
import pytest

import client_info
from client_info import Client, ClientError, Reason, attribute_key
from clientinfo.v1 import contact_search_service_pb2, interaction_pb2, interactions_service_pb2

from conftest import Domain, Server


def test_the_package_under_test_is_the_installed_wheel() -> None:
    site = os.environ.get("CLIENT_INFO_SDK_SITE")
    if site is None:
        pytest.skip("CLIENT_INFO_SDK_SITE not set: run by the Rust wrapper")
    assert client_info.__file__.startswith(site), client_info.__file__
    import clientinfo.v1.contact_pb2 as generated

    assert generated.__file__.startswith(site), generated.__file__


def test_an_offered_call_names_the_known_contact_as_candidate_in_the_panel(
    service: Client, agent: Client, domain: Domain
) -> None:
    ann = service.create_contact("Ann Lee", phones=["07400 123456"], labels=["VIP"]).contact
    call = f"call-{uuid.uuid4()}"

    def offer() -> interactions_service_pb2.OfferInteractionResponse:
        return service.offer_call(
            call, "+44 7400 123456", domain.agent.id, queue=("q1", "Support"),
            variables=[("lang", "en")],
        )

    offered = offer()
    assert offered.identification.outcome == interaction_pb2.IDENTIFICATION_OUTCOME_IDENTIFIED
    assert offered.state == interaction_pb2.INTERACTION_STATE_OFFERED and offered.changed
    # The same offer again (what a retry sends) changes nothing.
    assert not offer().changed

    panel = agent.get_client_info(call)
    assert panel.interaction_id == call
    assert [c.contact.contact.id for c in panel.candidates] == [ann.id]
    assert panel.candidates[0].exact
    assert panel.queue.name == "Support"

    service.accept_interaction(call, domain.agent.id)
    bound = agent.select_contact(call, ann.id)
    assert bound.bound_contact.contact.id == ann.id
    assert not agent.unbind_contact(call).HasField("bound_contact")


def test_an_identification_key_from_the_ivr_identifies_first(service: Client, domain: Domain) -> None:
    account = uuid.uuid4().hex[:12]
    bob = service.create_contact("Bob Stone", attributes={"account_no": account}).contact
    offered = service.offer_call(
        f"call-{uuid.uuid4()}", "+44 7400 999111", domain.agent.id,
        identification_keys=[attribute_key("account_no", account, "entered in the IVR")],
    )
    assert offered.identification.outcome == interaction_pb2.IDENTIFICATION_OUTCOME_IDENTIFIED
    assert offered.identification.reason == (
        f"one contact: attribute account_no = {account}, entered in the IVR"
    )
    assert bob.id > 0


def test_search_pages_through_every_hit(service: Client) -> None:
    surname = "Zq" + uuid.uuid4().hex[:8]
    ids = {service.create_contact(f"{first} {surname}").contact.id for first in ("Ann", "Bea", "Cy")}
    first = service.search(name=surname, page_size=2)
    assert len(first.hits) == 2 and first.has_more and first.next_page_token
    second = service.search(name=surname, page_size=2, page_token=first.next_page_token)
    assert len(second.hits) == 1 and not second.next_page_token
    every = [hit.contact.contact.id for hit in service.search_all(name=surname, page_size=2)]
    assert sorted(every) == sorted(ids)

    number = service.create_contact("Dan " + surname, phones=["+44 7400 555" + str(len(ids)) + "21"])
    by_number = service.search(destination=number.contact.phones[0].e164)
    assert [h.contact.contact.id for h in by_number.hits] == [number.contact.id]


def test_invalid_fields_come_back_as_violations_with_the_reason(service: Client) -> None:
    with pytest.raises(ClientError) as caught:
        service.create_contact("", phones=["not a number"], time_zone="Mars/Olympus")
    e = caught.value
    assert e.code == grpc.StatusCode.INVALID_ARGUMENT
    assert e.reason is Reason.INVALID_FIELDS and e.reason_text == "INVALID_FIELDS"
    fields = {v.field for v in e.violations}
    assert {"display_name", "communications[0].phone.number", "time_zone"} <= fields, fields
    assert all(v.description for v in e.violations)
    assert not e.is_retryable


def test_a_stale_version_is_a_version_conflict_with_the_current_version(service: Client) -> None:
    created = service.create_contact("Eve Moss", request_id=f"crm-{uuid.uuid4()}")
    card = service.update_contact(created.contact.id, created.contact.version, description="Call after 18:00")
    assert card.description == "Call after 18:00" and card.version > created.contact.version
    assert card.display_name == "Eve Moss"  # only the masked field changed

    with pytest.raises(ClientError) as caught:
        service.update_contact(created.contact.id, created.contact.version, description="stale")
    e = caught.value
    assert e.code == grpc.StatusCode.ABORTED
    assert e.reason is Reason.CONTACT_VERSION_MISMATCH
    assert e.metadata["current_version"] == str(card.version)
    assert not e.is_retryable  # repeating it can never succeed: reload first
    assert service.get_contact(created.contact.id).description == "Call after 18:00"


def test_a_create_with_a_request_id_is_idempotent(service: Client) -> None:
    request_id = client_info.new_request_id()
    first = service.create_contact("Fay Nash", request_id=request_id, emails=["fay@example.com"])
    again = service.create_contact("Fay Nash", request_id=request_id, emails=["fay@example.com"])
    assert first.created and not again.created
    assert again.contact.id == first.contact.id
    with pytest.raises(ClientError) as caught:
        service.create_contact("Someone Else", request_id=request_id)
    assert caught.value.code == grpc.StatusCode.ALREADY_EXISTS
    assert caught.value.reason is Reason.REQUEST_ID_REUSED


def test_not_found_permission_and_token_errors_carry_their_reasons(
    server: Server, service: Client, agent: Client
) -> None:
    with pytest.raises(ClientError) as missing:
        service.get_contact(987_654_321)
    assert missing.value.code == grpc.StatusCode.NOT_FOUND
    assert missing.value.reason is Reason.CONTACT_NOT_FOUND

    with pytest.raises(ClientError) as denied:
        agent.create_contact("Not Allowed")
    assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert denied.value.reason is Reason.PERMISSION_MISSING
    assert denied.value.metadata["permission"] == "contacts.write"

    with Client(server.url, token="not-a-jwt") as forged:
        with pytest.raises(ClientError) as refused:
            forged.get_contact(1)
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.reason in (Reason.TOKEN_INVALID, Reason.TOKEN_MALFORMED)


def test_a_token_function_is_asked_per_call_and_raw_stubs_carry_it(server: Server, domain: Domain) -> None:
    asked: list[int] = []

    def token() -> str:
        asked.append(1)
        return domain.service.token

    with Client(server.url, token=token) as client:
        created = client.create_contact("Gus Hart").contact
        raw = client.contact_search.GetContact(
            contact_search_service_pb2.GetContactRequest(contact_id=created.id)
        )
        assert raw.contact.display_name == "Gus Hart"
    assert len(asked) == 2


def test_an_unknown_reason_is_kept_as_text_and_never_fails() -> None:
    e = ClientError(grpc.StatusCode.FAILED_PRECONDITION, "new", reason_text="A_REASON_FROM_LATER")
    assert e.reason is Reason.UNRECOGNIZED and e.reason_text == "A_REASON_FROM_LATER"
    assert Reason.parse("SLOW_CONSUMER") is Reason.SLOW_CONSUMER


def test_a_call_past_its_deadline_is_deadline_exceeded(service: Client) -> None:
    with pytest.raises(ClientError) as caught:
        service.search(name="anyone", timeout=0.000_001)
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_a_url_without_a_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        Client("127.0.0.1:50051", token="t")
