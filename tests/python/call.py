"""A second language: stubs generated from proto/ with grpcio-tools, one call to the server.

Usage: python call.py ADDRESS TOKEN CONTACT_ID OUT_DIR
Generates the Python stubs of clientinfo.v1 into OUT_DIR, calls
ContactSearchService/GetContact with the bearer token, prints the card as JSON, then calls it
for a contact that does not exist and prints the status code and the ErrorInfo reason.
"""

import json
import os
import sys

import grpc
import grpc_tools
from grpc_tools import protoc

address, token, contact_id, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
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

from clientinfo.v1 import contact_search_service_pb2 as search  # noqa: E402
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
