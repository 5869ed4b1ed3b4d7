#!/usr/bin/env python3
"""Writes the committed seed corpus (fuzz/corpus/<target>/): a few valid inputs per target, in
each target's input layout (fuzz_targets/*.rs say it), so that fuzzing starts from the shapes
that pass validation. Run from anywhere: python3 fuzz/seeds.py"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, value):
    """A protobuf field: int (varint) or bytes/str (length-delimited)."""
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(num << 3 | 2) + varint(len(value)) + value


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


for name, text in {
    "gb-mobile": "GB07400 123456",
    "fr-formats": "FR+33 (0)6 28-23-04-55",
    "br-ninth-digit": "BR(11) 8765-4321",
    "us-011": "US011 33 6 28 23 04 55",
    "it-zero": "IT+39 0471 123456",
    "unknown-region": "\x01\x0000 44 20 7946 0018",
}.items():
    write("phone", name, text.encode())

for name, (flags, fields) in {
    "name": (0, ["ann lee"]),
    "phone": (0, ["", "07400 123456"]),
    "digits-any": (0xC0 | 1, ["", "2304", "crm_id", "*"]),
    "email-messaging": (2 | 4, ["", "Ann.Lee@Example.com", "telegram", "42", "VIP", "o'brein"]),
}.items():
    write("search", name, b"GB" + bytes([flags]) + "\n".join(fields).encode())

for name, (flags, owner, lines) in {
    "name-and-labels": (1, 0, ["display_name", "labels", "", "Ann Lee", "", "", "VIP"]),
    "owner-time-zone": (0, 7, ["owner_id", "time_zone", "", "", "", "Europe/London"]),
    "attributes-unknown": (2, 0, ["attributes", "phones", "", "", "", "", "crm_id", "CRM-42"]),
}.items():
    write("update_mask", name, bytes([flags]) + struct.pack("<q", owner) + "\n".join(lines).encode())

for kind, tail in enumerate([b"Ann Lee", b'{"p":3,"i":42,"r":"0/16B6C50"}', b"", b"", b"Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln"]):
    head = bytes([kind]) + struct.pack("<Qqq", 0x1234, 3, 42) + struct.pack("<HBB", 17, ord("A"), kind)
    write("tokens", f"kind-{kind}", head + tail)

phone = field(1, field(1, "07400 123456"))
email = field(2, field(1, "ann@example.com"))
RPC = {"CreateContact": 0, "UpdateContact": 12, "OfferInteraction": 20, "SearchContacts": 26,
       "GetContact": 27, "ListContacts": 17}
for name, (rpc, body) in {
    "create": (RPC["CreateContact"], field(1, "crm-42") + field(3, "Ann Lee") + field(4, "Europe/London")
               + field(6, "VIP") + field(8, field(1, "crm_id") + field(2, "CRM-42"))
               + field(9, phone) + field(9, email)),
    "update": (RPC["UpdateContact"], field(1, 42) + field(2, 3) + field(3, field(1, "description"))
               + field(5, "Call after 18:00")),
    "offer": (RPC["OfferInteraction"], field(1, "call-1") + field(2, 1) + field(3, 1)
              + field(5, 7) + field(9, field(1, 1700000000))),
    "search": (RPC["SearchContacts"], field(2, "ann") + field(3, "07400 123456") + field(9, 20)),
    "get": (RPC["GetContact"], field(1, 42)),
    "list": (RPC["ListContacts"], b""),
}.items():
    write("request", name, bytes([rpc]) + body)
