"""A second language: stubs generated from proto/ with grpcio-tools, one call to the server.

Usage: python call.py ADDRESS TOKEN CONTACT_ID OUT_DIR [AGENT_ID]
Generates the Python stubs of clientinfo.v1 into OUT_DIR, calls
ContactSearchService/GetContact with the bearer token, prints the card as JSON, then calls it
for a contact that does not exist and prints the status code and the ErrorInfo reason. With
AGENT_ID (the token also routes): offers a call to that agent with an identification key the
caller "entered in the IVR" (attribute account_no = 12345) and prints the identification, then
offers one with a malformed key and prints the code and the fields the BadRequest names.
"""

import json
import os
import sys

import grpc
import grpc_tools
from grpc_tools import protoc

address, token, contact_id, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
agent_id = int(sys.argv[5]) if len(sys.argv) > 5 else 0
root = os.path.join(os.path.dirname(__file__), "..", "..", "proto")
protos = sorted(
    os.path.join("clientinfo", "v1", f)
    for f in os.listdir(os.path.join(root, "clientinfo", "v1"))
    if f.endswith(".proto")
)
well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
os.makedirs(out, exist_ok=True)
code = protoc.main(
    ["protoc", f"-I{root}", f"-I{well_known}", f"--python_out={out}", f"--grpc_python_out={out}"]
    + protos
)
if code != 0:
    sys.exit(f"protoc failed ({code})")
sys.path.insert(0, out)

from clientinfo.v1 import contact_pb2 as contact  # noqa: E402
from clientinfo.v1 import contact_search_service_pb2 as search  # noqa: E402
from clientinfo.v1 import interaction_pb2 as interaction  # noqa: E402
from clientinfo.v1 import interactions_service_pb2 as interactions  # noqa: E402
from clientinfo.v1 import interactions_service_pb2_grpc as interactions_grpc  # noqa: E402
from clientinfo.v1 import contact_search_service_pb2_grpc as search_grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from google.rpc import error_details_pb2, status_pb2  # noqa: E402

metadata = [("authorization", f"Bearer {token}")]
with grpc.insecure_channel(address) as channel:
    stub = search_grpc.ContactSearchServiceStub(channel)
    reply = stub.GetContact(search.GetContactRequest(contact_id=contact_id), metadata=metadata)
    print(json.dumps({"contact": json_format.MessageToDict(reply.contact)}))
    try:
        stub.GetContact(search.GetContactRequest(contact_id=999999999), metadata=metadata)
        sys.exit("a missing contact was found")
    except grpc.RpcError as e:
        reason = ""
        for key, value in e.trailing_metadata() or ():
            if key == "grpc-status-details-bin":
                status = status_pb2.Status.FromString(value)
                for detail in status.details:
                    info = error_details_pb2.ErrorInfo()
                    if detail.Unpack(info):
                        reason = info.reason
        print(json.dumps({"code": e.code().name, "reason": reason}))
    if agent_id:
        routing = interactions_grpc.InteractionsServiceStub(channel)

        def offer(iid, key):
            return interactions.OfferInteractionRequest(
                interaction_id=iid,
                kind=interaction.INTERACTION_KIND_CALL,
                direction=interaction.INTERACTION_DIRECTION_INBOUND,
                destination=interaction.ClientDestination(
                    call=interaction.CallerNumber(number="+447400999999")
                ),
                agent_user_id=agent_id,
                identification_keys=[key],
            )

        ivr = interactions.IdentificationKey(
            attribute=contact.Attribute(key="account_no", value="12345"),
            source="entered in the IVR",
        )
        reply = routing.OfferInteraction(offer("py-ivr", ivr), metadata=metadata)
        print(json.dumps({"identification": json_format.MessageToDict(reply.identification)}))
        bad = interactions.IdentificationKey(
            attribute=contact.Attribute(key="account no", value="12345")
        )
        try:
            routing.OfferInteraction(offer("py-bad", bad), metadata=metadata)
            sys.exit("a malformed key was accepted")
        except grpc.RpcError as e:
            fields = []
            for key, value in e.trailing_metadata() or ():
                if key == "grpc-status-details-bin":
                    for detail in status_pb2.Status.FromString(value).details:
                        bad_request = error_details_pb2.BadRequest()
                        if detail.Unpack(bad_request):
                            fields += [v.field for v in bad_request.field_violations]
            print(json.dumps({"code": e.code().name, "fields": fields}))
