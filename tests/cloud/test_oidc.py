"""OidcVerifier against a real OIDC issuer on loopback HTTP, in the test's loop.

The issuer serves a discovery document and a JWKS of keys made here; tokens are signed
with PyJWT (or forged by hand where PyJWT rightly refuses to make them).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from ldt.cloud.access.errors import TokenRejectedError
from ldt.cloud.access.oidc import MAX_KEYS, OidcSettings, OidcVerifier
from ldt.cloud.access.roles import Grant, Role

pytestmark = pytest.mark.integration

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
AUDIENCE = "ldt"


# --- keys and tokens ---------------------------------------------------------------------


@functools.cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    """One RSA 2048 key per name, made once per test run (generation is the slow part)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def ec_key(name: str) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@functools.cache
def ed_key(name: str) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def public_jwk(private: PrivateKey, kid: str, alg: str | None = None) -> dict[str, Any]:
    """The JWKS entry a provider publishes for ``private``."""
    if isinstance(private, rsa.RSAPrivateKey):
        entry = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    elif isinstance(private, ec.EllipticCurvePrivateKey):
        entry = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        entry = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    entry.update(kid=kid, use="sig")
    if alg is not None:
        entry["alg"] = alg
    return entry


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], hmac_secret: bytes | None) -> str:
    """A token PyJWT would refuse to make: ``alg: none`` or an HMAC over a public key."""
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    signature = (
        hmac.new(hmac_secret, signing_input.encode(), hashlib.sha256).digest()
        if hmac_secret is not None
        else b""
    )
    return signing_input + "." + b64url(signature)


# --- a real issuer on loopback -----------------------------------------------------------


Answer = tuple[int, dict[str, str], bytes]


class Loopback:
    """A minimal HTTP/1.1 server on 127.0.0.1 (one request per connection), stoppable
    mid-test. Bare asyncio rather than uvicorn: it starts and stops in microseconds,
    where uvicorn's shutdown sleeps, and the whole file must stay fast."""

    def __init__(self, handler: Callable[[str], Answer]) -> None:
        self.handler = handler
        self.base = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.base = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await reader.readline()
            while (await reader.readline()).strip():
                pass  # headers: not needed
            target = request_line.decode("latin-1").split(" ")[1]
            status, headers, body = self.handler(target.split("?")[0])
            head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "Connection: close"]
            head += [f"{name}: {value}" for name, value in headers.items()]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def json_answer(document: object, *, declare_length: bool = True) -> Answer:
    body = json.dumps(document).encode()
    headers = {"Content-Type": "application/json"}
    if declare_length:  # without it, the body runs to the connection's close
        headers["Content-Length"] = str(len(body))
    return 200, headers, body


@dataclass
class Issuer:
    """The provider's state; the tests change it (rotation, bad documents) between calls."""

    server: Loopback = field(init=False)
    jwks: list[dict[str, Any]]
    path: str = "/realms/city"
    jwks_hits: int = 0
    discovery_hits: int = 0
    jwks_uri: str | None = None  # what discovery announces; its own /jwks by default
    jwks_padding: int = 0  # bytes of filler in the JWKS document
    declare_length: bool = True  # send Content-Length
    redirect: bool = False  # discovery answers 302 to the real document
    announced_issuer: str | None = None  # discovery's "issuer"; its own URL by default

    def __post_init__(self) -> None:
        self.server = Loopback(self.handle)

    @property
    def url(self) -> str:
        return self.server.base + self.path

    def claims(self, **changes: Any) -> dict[str, Any]:
        """Keycloak-like access token claims; a change to None removes the claim."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "sub": "f1a2-user-id",
            "aud": [AUDIENCE, "account"],
            "exp": now + 300,
            "iat": now,
            "typ": "Bearer",
            "preferred_username": "alice",
            "realm_access": {"roles": ["operator@water", "viewer", "offline_access"]},
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def token(
        self,
        key: PrivateKey | None = None,
        kid: str = "rsa-1",
        alg: str = "RS256",
        headers: dict[str, Any] | None = None,
        **changes: Any,
    ) -> str:
        return jwt.encode(
            self.claims(**changes),
            key if key is not None else rsa_key("rsa-1"),
            algorithm=alg,
            headers={"kid": kid, **(headers or {})},
        )

    def handle(self, path: str) -> Answer:
        if path == self.path + "/.well-known/openid-configuration":
            self.discovery_hits += 1
            if self.redirect:
                return 302, {"Location": self.url + "/moved", "Content-Length": "0"}, b""
            document = {
                "issuer": self.announced_issuer or self.url,
                "jwks_uri": self.jwks_uri or self.url + "/jwks",
            }
            return json_answer({**document, "token_endpoint": self.url + "/token"})
        if path == self.path + "/moved":
            return json_answer({"issuer": self.url, "jwks_uri": self.url + "/jwks"})
        if path == self.path + "/jwks":
            self.jwks_hits += 1
            keys_document: dict[str, Any] = {"keys": self.jwks, "padding": "x" * self.jwks_padding}
            return json_answer(keys_document, declare_length=self.declare_length)
        return 404, {"Content-Length": "0"}, b""


@contextlib.asynccontextmanager
async def running_issuer(jwks: list[dict[str, Any]]) -> AsyncIterator[Issuer]:
    issuer = Issuer(jwks=jwks)
    await issuer.server.start()
    try:
        yield issuer
    finally:
        await issuer.server.stop()


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    keys = [
        public_jwk(rsa_key("rsa-1"), "rsa-1", alg="RS256"),
        public_jwk(ec_key("ec-1"), "ec-1"),
        public_jwk(ed_key("ed-1"), "ed-1"),
        public_jwk(rsa_key("pss"), "pss"),  # no alg: RS* and PS* both possible
        {"kty": "RSA", "kid": "enc-1", "use": "enc", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB"},
    ]
    async with running_issuer(keys) as running:
        yield running


@contextlib.asynccontextmanager
async def verifying(settings: OidcSettings, **options: Any) -> AsyncIterator[OidcVerifier]:
    verifier = OidcVerifier(settings, **{"min_refresh_interval_s": 0.05, **options})
    try:
        yield verifier
    finally:
        await verifier.aclose()


@pytest.fixture
async def verifier(issuer: Issuer) -> AsyncIterator[OidcVerifier]:
    async with verifying(OidcSettings(issuer=issuer.url, audience=AUDIENCE)) as v:
        yield v


async def rejected(verifier: OidcVerifier, token: str) -> str:
    """The reason ``token`` is refused (fails the test if it is accepted)."""
    with pytest.raises(TokenRejectedError) as refused:
        await verifier.verify(token)
    return refused.value.reason


# --- accepted tokens ---------------------------------------------------------------------


async def test_a_keycloak_rs256_token_gives_the_identity_and_its_grants(
    issuer: Issuer, verifier: OidcVerifier
) -> None:
    token = issuer.token()
    who = await verifier.verify(token)
    assert who.subject == "f1a2-user-id"
    assert who.name == "alice"
    assert who.grants == (Grant("water", Role.OPERATOR), Grant("", Role.VIEWER))
    assert who.expires_at == float(jwt.decode(token, options={"verify_signature": False})["exp"])
    assert (issuer.discovery_hits, issuer.jwks_hits) == (1, 1)
    await verifier.verify(issuer.token(sub="other"))  # cached keys: no more fetches
    assert (issuer.discovery_hits, issuer.jwks_hits) == (1, 1)


async def test_es256_eddsa_and_ps256_tokens_are_accepted(
    issuer: Issuer, verifier: OidcVerifier
) -> None:
    assert (await verifier.verify(issuer.token(ec_key("ec-1"), "ec-1", "ES256"))).name == "alice"
    assert (await verifier.verify(issuer.token(ed_key("ed-1"), "ed-1", "EdDSA"))).name == "alice"
    assert (await verifier.verify(issuer.token(rsa_key("pss"), "pss", "PS256"))).name == "alice"


async def test_a_custom_roles_claim_and_keyrock_role_objects(issuer: Issuer) -> None:
    settings = OidcSettings(issuer=issuer.url + "/", roles_claim="resource_access.ldt.roles")
    async with verifying(settings) as verifier:
        who = await verifier.verify(
            issuer.token(resource_access={"ldt": {"roles": ["technician@north", "uma"]}})
        )
        assert who.grants == (Grant("north", Role.TECHNICIAN),)
    async with verifying(OidcSettings(issuer=issuer.url, roles_claim="roles")) as verifier:
        who = await verifier.verify(
            issuer.token(
                preferred_username=None,
                roles=[{"id": "r1", "name": "admin"}, {"id": "r2"}, 7, "admin@*", "admin"],
            )
        )
        assert who.name == "f1a2-user-id"  # no preferred_username: the subject
        assert who.grants == (Grant("", Role.ADMIN), Grant("*", Role.ADMIN))
    dotted = OidcSettings(issuer=issuer.url, roles_claim="resource_access.city.ldt.roles")
    async with verifying(dotted) as verifier:  # Keycloak client ids may contain dots
        who = await verifier.verify(
            issuer.token(resource_access={"city.ldt": {"roles": ["viewer"]}})
        )
        assert who.grants == (Grant("", Role.VIEWER),)
        assert (await verifier.verify(issuer.token(resource_access=None))).grants == ()


async def test_without_an_audience_setting_any_aud_is_accepted(issuer: Issuer) -> None:
    async with verifying(OidcSettings(issuer=issuer.url)) as verifier:
        assert (await verifier.verify(issuer.token(aud="someone-else"))).name == "alice"


# --- refused tokens ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"nbf": int(time.time()) + 600}, "not yet valid"),
        ({"iat": int(time.time()) + 600}, "not yet valid"),
        ({"aud": "account"}, "wrong audience"),
        ({"aud": None}, "missing claim aud"),
        ({"iss": "https://evil.example/realms/city"}, "wrong issuer"),
        ({"exp": None}, "missing claim exp"),
        ({"sub": None}, "missing claim sub"),
        ({"sub": ""}, "missing claim sub"),
        ({"typ": "ID"}, "not an access token"),
    ],
)
async def test_claims_are_checked(
    issuer: Issuer, verifier: OidcVerifier, changes: dict[str, Any], reason: str
) -> None:
    assert await rejected(verifier, issuer.token(**changes)) == reason


async def test_leeway_tolerates_a_little_clock_skew(issuer: Issuer, verifier: OidcVerifier) -> None:
    now = int(time.time())
    assert await verifier.verify(issuer.token(exp=now - 5, nbf=now + 5, iat=now + 5))


async def test_alg_none_and_hs256_with_the_public_key_are_refused(
    issuer: Issuer, verifier: OidcVerifier
) -> None:
    claims = issuer.claims()
    assert await rejected(verifier, forge({"alg": "none", "kid": "rsa-1"}, claims, None)) == (
        "algorithm not allowed"
    )
    pem = (
        rsa_key("rsa-1")
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    confused = forge({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims, pem)
    assert await rejected(verifier, confused) == "algorithm not allowed"
    assert issuer.jwks_hits == 0  # refused before any key was looked up


async def test_the_algorithm_must_fit_the_selected_key(
    issuer: Issuer, verifier: OidcVerifier
) -> None:
    # An EC signature under the RSA key's kid, and the other way round.
    mismatch = "algorithm does not match the key"
    assert await rejected(verifier, issuer.token(ec_key("ec-1"), "rsa-1", "ES256")) == mismatch
    assert await rejected(verifier, issuer.token(rsa_key("rsa-1"), "ec-1", "RS256")) == mismatch
    # The JWK says RS256: a PS256 token under it is refused even though RSA could do it.
    assert await rejected(verifier, issuer.token(rsa_key("rsa-1"), "rsa-1", "PS256")) == mismatch
    # ES384 needs a P-384 key, not this P-256 one (PyJWT will not sign that: relabel ES256).
    _, payload, signature = issuer.token(ec_key("ec-1"), "ec-1", "ES256").split(".")
    relabelled = b64url(json.dumps({"alg": "ES384", "kid": "ec-1"}).encode())
    assert await rejected(verifier, f"{relabelled}.{payload}.{signature}") == mismatch


async def test_tampered_and_foreign_tokens_are_refused(
    issuer: Issuer, verifier: OidcVerifier
) -> None:
    header, _, signature = issuer.token().split(".")
    promoted = issuer.claims(realm_access={"roles": ["admin@*"]})
    tampered = f"{header}.{b64url(json.dumps(promoted).encode())}.{signature}"
    assert await rejected(verifier, tampered) == "bad signature"
    # Signed by someone else's key under a known kid.
    assert await rejected(verifier, issuer.token(rsa_key("attacker"))) == "bad signature"
    # Someone else's key, carried in the token itself and pointed at by jku: never used.
    attacker_jwk = public_jwk(rsa_key("attacker"), "attacker")
    jku = issuer.url + "/attacker-jwks"
    bring_your_own = issuer.token(
        rsa_key("attacker"), "attacker", headers={"jwk": attacker_jwk, "jku": jku}
    )
    assert await rejected(verifier, bring_your_own) == "unknown key"
    assert await rejected(verifier, "not.a.jwt") == "malformed token"
    assert await rejected(verifier, "") == "malformed token"
    deep = b64url(b"[" * 5000) + "." + b64url(b"{}") + ".c2ln"  # RecursionError in json
    assert await rejected(verifier, deep) == "malformed token"


async def test_an_oversized_token_is_refused_before_parsing(
    issuer: Issuer, verifier: OidcVerifier
) -> None:
    huge = issuer.token(padding="x" * 9000)
    assert await rejected(verifier, huge) == "token too large"
    assert await rejected(verifier, "é" * 9000) == "token too large"
    assert await rejected(verifier, "é" * 5000) == "malformed token"  # not ASCII
    assert await rejected(verifier, "\ud800.a.b") == "malformed token"  # a lone surrogate
    assert issuer.jwks_hits == issuer.discovery_hits == 0


async def test_an_unknown_kid_is_refused(issuer: Issuer, verifier: OidcVerifier) -> None:
    assert await rejected(verifier, issuer.token(kid="nobody")) == "unknown key"
    assert await rejected(verifier, issuer.token(kid="enc-1")) == "unknown key"  # use: enc


# --- keys: rotation, rate limits, bounds -------------------------------------------------


async def test_a_rotated_key_is_fetched_once_the_interval_has_passed(issuer: Issuer) -> None:
    settings = OidcSettings(issuer=issuer.url, audience=AUDIENCE)
    async with verifying(settings, min_refresh_interval_s=0.2) as verifier:
        await verifier.verify(issuer.token())
        issuer.jwks = [public_jwk(rsa_key("rsa-2"), "rsa-2", alg="RS256")]
        rotated = issuer.token(rsa_key("rsa-2"), "rsa-2")
        # Too soon after the first fetch: the new kid is not looked for yet.
        assert await rejected(verifier, rotated) == "unknown key"
        assert issuer.jwks_hits == 1
        await asyncio.sleep(0.25)
        assert (await verifier.verify(rotated)).name == "alice"
        assert issuer.jwks_hits == 2
        assert issuer.discovery_hits == 1  # the jwks_uri is remembered
        # The old key left the JWKS with the refresh.
        assert await rejected(verifier, issuer.token()) == "unknown key"


async def test_a_flood_of_unknown_kids_fetches_at_most_once_per_interval(
    issuer: Issuer,
) -> None:
    settings = OidcSettings(issuer=issuer.url, audience=AUDIENCE)
    async with verifying(settings, min_refresh_interval_s=0.2) as verifier:
        await verifier.verify(issuer.token())
        assert issuer.jwks_hits == 1
        bogus = [issuer.token(kid=f"bogus-{i}") for i in range(60)]
        for _ in range(2):
            await asyncio.sleep(0.25)
            hits_before = issuer.jwks_hits
            results = await asyncio.gather(
                *(verifier.verify(t) for t in bogus), return_exceptions=True
            )
            assert all(isinstance(r, TokenRejectedError) for r in results)
            assert issuer.jwks_hits == hits_before + 1  # one shared fetch for 60 tokens
            results = await asyncio.gather(
                *(verifier.verify(t) for t in bogus), return_exceptions=True
            )
            assert issuer.jwks_hits == hits_before + 1  # and none within the interval
        assert (await verifier.verify(issuer.token())).name == "alice"


async def test_keys_older_than_the_maximum_age_are_refetched(issuer: Issuer) -> None:
    settings = OidcSettings(issuer=issuer.url, audience=AUDIENCE)
    async with verifying(settings, min_refresh_interval_s=0.0, max_key_age_s=0.1) as verifier:
        await verifier.verify(issuer.token())
        await verifier.verify(issuer.token())
        assert issuer.jwks_hits == 1
        await asyncio.sleep(0.15)
        await verifier.verify(issuer.token())
        assert issuer.jwks_hits == 2


async def test_only_max_keys_are_kept(issuer: Issuer, verifier: OidcVerifier) -> None:
    entry = public_jwk(rsa_key("rsa-1"), "x", alg="RS256")
    issuer.jwks = [{**entry, "kid": f"k{i}"} for i in range(MAX_KEYS + 20)]
    assert await verifier.verify(issuer.token(kid=f"k{MAX_KEYS - 1}"))
    assert await rejected(verifier, issuer.token(kid=f"k{MAX_KEYS}")) == "unknown key"


@pytest.mark.parametrize("declare_length", [True, False])
async def test_an_oversized_jwks_is_not_read(issuer: Issuer, declare_length: bool) -> None:
    issuer.jwks_padding = 300_000
    issuer.declare_length = declare_length  # refused from the header, or cut while streaming
    async with verifying(OidcSettings(issuer=issuer.url, audience=AUDIENCE)) as verifier:
        assert await rejected(verifier, issuer.token()) == "issuer unreachable"
        issuer.jwks_padding = 200_000  # large but within bounds
        await asyncio.sleep(0.06)
        assert (await verifier.verify(issuer.token())).name == "alice"


async def test_redirects_are_not_followed(issuer: Issuer) -> None:
    issuer.redirect = True
    async with httpx.AsyncClient(follow_redirects=True) as client:
        settings = OidcSettings(issuer=issuer.url, audience=AUDIENCE)
        async with verifying(settings, client=client) as verifier:
            assert await rejected(verifier, issuer.token()) == "issuer unreachable"
        assert not client.is_closed  # a client passed in stays open
    assert issuer.jwks_hits == 0


async def test_a_jwks_uri_on_another_origin_is_refused_unless_configured(
    issuer: Issuer,
) -> None:
    async with running_issuer([public_jwk(rsa_key("rsa-1"), "rsa-1")]) as elsewhere:
        issuer.jwks_uri = elsewhere.url + "/jwks"  # same host, another port
        async with verifying(OidcSettings(issuer=issuer.url)) as verifier:
            assert await rejected(verifier, issuer.token()) == "issuer misconfigured"
        assert elsewhere.jwks_hits == 0
        issuer.jwks_uri = "https://127.0.0.1" + issuer.path + "/jwks"  # another scheme
        async with verifying(OidcSettings(issuer=issuer.url)) as verifier:
            assert await rejected(verifier, issuer.token()) == "issuer misconfigured"
        # An operator who says where the keys are is believed; discovery is skipped.
        explicit = OidcSettings(issuer=issuer.url, jwks_url=elsewhere.url + "/jwks")
        discoveries = issuer.discovery_hits
        async with verifying(explicit) as verifier:
            assert (await verifier.verify(issuer.token())).name == "alice"
        assert elsewhere.jwks_hits == 1
        assert issuer.discovery_hits == discoveries


async def test_a_discovery_document_for_another_issuer_is_refused(issuer: Issuer) -> None:
    issuer.announced_issuer = "https://kc.example/realms/city"
    async with verifying(OidcSettings(issuer=issuer.url)) as verifier:
        assert await rejected(verifier, issuer.token()) == "issuer misconfigured"
    assert issuer.jwks_hits == 0


async def test_a_down_issuer_refuses_new_keys_but_cached_keys_keep_working(
    issuer: Issuer,
) -> None:
    settings = OidcSettings(issuer=issuer.url, audience=AUDIENCE)
    async with verifying(settings, min_refresh_interval_s=0.05) as verifier:
        await verifier.verify(issuer.token())
        await issuer.server.stop()
        assert (await verifier.verify(issuer.token())).name == "alice"
        await asyncio.sleep(0.06)
        assert await rejected(verifier, issuer.token(kid="rsa-2")) == "issuer unreachable"
        assert (await verifier.verify(issuer.token())).name == "alice"
    async with verifying(settings) as fresh:
        assert await rejected(fresh, issuer.token()) == "issuer unreachable"
