"""A stand-in identity provider for the tests: signing keys and tokens made with PyJWT and
cryptography (libraries this project did not write), the way Keycloak, Okta or Entra ID make
theirs.

    idp.py keygen DIR NAME:ALG ...   a private key per NAME (RS256 and PS256: RSA 2048; ES256:
                                     P-256; ES384: P-384; EdDSA: Ed25519), DIR/NAME.pem, and its
                                     public JWK (kid NAME, alg ALG, use sig), DIR/NAME.jwk
    idp.py jwks DIR NAME ...         prints the key set of those keys
    idp.py tokens DIR                reads a JSON array of {"key", "alg", "claims", "headers"}
                                     on stdin and prints the tokens, a JSON array

A token's header carries kid = its key's name unless "headers" says otherwise; "alg" defaults
to the key's own.
"""

import json
import sys
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

# What PyJWT's algorithm objects call a key's public JWK.
ALGORITHMS = jwt.algorithms.get_default_algorithms()


def generate(alg):
    if alg in ("RS256", "PS256"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "ES384":
        return ec.generate_private_key(ec.SECP384R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise SystemExit(f"unknown algorithm {alg}")


def keygen(directory, specs):
    directory.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        name, alg = spec.split(":")
        key = generate(alg)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        (directory / f"{name}.pem").write_bytes(pem)
        public = json.loads(ALGORITHMS[alg].to_jwk(key.public_key()))
        public.update({"kid": name, "alg": alg, "use": "sig"})
        (directory / f"{name}.jwk").write_text(json.dumps(public))
        (directory / f"{name}.alg").write_text(alg)


def jwks(directory, names):
    keys = [json.loads((directory / f"{n}.jwk").read_text()) for n in names]
    print(json.dumps({"keys": keys}))


def tokens(directory):
    out = []
    for spec in json.load(sys.stdin):
        name = spec["key"]
        key = serialization.load_pem_private_key(
            (directory / f"{name}.pem").read_bytes(), password=None
        )
        alg = spec.get("alg") or (directory / f"{name}.alg").read_text()
        headers = {"kid": name}
        headers.update(spec.get("headers") or {})
        if headers.get("kid") is None:
            del headers["kid"]
        out.append(jwt.encode(spec["claims"], key, algorithm=alg, headers=headers))
    print(json.dumps(out))


def main():
    command, directory = sys.argv[1], Path(sys.argv[2])
    if command == "keygen":
        keygen(directory, sys.argv[3:])
    elif command == "jwks":
        jwks(directory, sys.argv[3:])
    elif command == "tokens":
        tokens(directory)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
