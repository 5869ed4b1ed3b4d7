"""FindDuplicates latency by hand (BENCHMARKS.md): not a test, nothing asserts a time.

Usage: python find_duplicates_bench.py ADDRESS TOKEN OUT_DIR [CALLS]
Generates the Python stubs into OUT_DIR (as call.py does), calls the first page CALLS times
(default 200) without and with a label filter on one channel, one call at a time, and prints
p50/p99/max; then pages through every group (page_size 100) and prints the pages, the groups,
the page of the first group and the time it took.
"""

import os
import sys
import time

import grpc
import grpc_tools
from grpc_tools import protoc

address, token, out = sys.argv[1], sys.argv[2], sys.argv[3]
calls = int(sys.argv[4]) if len(sys.argv) > 4 else 200
root = os.path.join(os.path.dirname(__file__), "..", "..", "proto")
protos = sorted(
    os.path.join("clientinfo", "v1", f)
    for f in os.listdir(os.path.join(root, "clientinfo", "v1"))
    if f.endswith(".proto")
)
well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
os.makedirs(out, exist_ok=True)
if protoc.main(["protoc", f"-I{root}", f"-I{well_known}", f"--python_out={out}",
                f"--grpc_python_out={out}"] + protos) != 0:
    sys.exit("protoc failed")
sys.path.insert(0, out)

from clientinfo.v1 import contacts_service_pb2 as pb  # noqa: E402
from clientinfo.v1 import contacts_service_pb2_grpc as stubs  # noqa: E402

metadata = [("authorization", f"Bearer {token}")]


def percentiles(ms):
    ms = sorted(ms)
    pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]  # noqa: E731
    return f"p50 {pick(0.50):.1f} ms, p99 {pick(0.99):.1f} ms, max {ms[-1]:.1f} ms"


with grpc.insecure_channel(address) as channel:
    stub = stubs.ContactsServiceStub(channel)
    for label, request in [
        ("first page", pb.FindDuplicatesRequest(page_size=20)),
        ("first page, label Retail", pb.FindDuplicatesRequest(page_size=20, labels=["Retail"])),
    ]:
        stub.FindDuplicates(request, metadata=metadata)  # connection and prepared statements
        ms, groups = [], 0
        for _ in range(calls):
            start = time.perf_counter()
            groups = len(stub.FindDuplicates(request, metadata=metadata).groups)
            ms.append((time.perf_counter() - start) * 1000)
        print(f"{label}: {calls} calls, {groups} groups: {percentiles(ms)}")
    token, pages, found, first, ms = "", 0, 0, None, []
    start = time.perf_counter()
    while True:
        t = time.perf_counter()
        r = stub.FindDuplicates(pb.FindDuplicatesRequest(page_size=100, page_token=token),
                                metadata=metadata)
        ms.append((time.perf_counter() - t) * 1000)
        pages, found = pages + 1, found + len(r.groups)
        if first is None and r.groups:
            first = pages
        token = r.next_page_token
        if not token:
            break
    print(f"every page (page_size 100): {pages} pages, {found} groups, first group on page "
          f"{first}, {time.perf_counter() - start:.1f} s; per page {percentiles(ms)}")
