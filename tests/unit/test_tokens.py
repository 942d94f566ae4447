"""Tokens: Keyring issue/verify with a pinned algorithm, rotation, and inspect_token that never raises."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import statelab as sl
from statelab import Keyring, TokenError, inspect_token

ALGS = ["HS256", "RS256", "ES256"]

# RFC 7515 appendix A.1 (the same token is RFC 7519 section 3.1): an HS256 JWS and its JWK "k".
RFC_TOKEN = (
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)
RFC_K = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def forge(header: dict, claims: dict, key: bytes | None = None, digest=hashlib.sha256) -> str:
    """A JWS built by hand, so it can say anything (PyJWT refuses to make some of these)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    sig = b"" if key is None else hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(sig)}"


def fresh_claims(sub: str = "alice", ttl: int = 300) -> dict:
    now = int(time.time())
    return {"sub": sub, "iat": now, "exp": now + ttl, "jti": "abc123", "cart": []}


@pytest.fixture(scope="module", params=ALGS)
def keyring(request) -> Keyring:
    return Keyring(request.param)


# --------------------------------------------------------------------------- issue and verify

def test_issue_and_verify_round_trip(keyring):
    before = int(time.time())
    token = keyring.issue("alice", 120, cart=[{"item": "book", "qty": 2}])
    header = jwt.get_unverified_header(token)
    assert header["alg"] == keyring.algorithm
    assert header["kid"] == keyring.current_kid
    claims = keyring.verify(token)
    assert claims["sub"] == "alice"
    assert claims["cart"] == [{"item": "book", "qty": 2}]
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == 120
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert keyring.issue("alice", 120)  # and jti differs per token
    assert len({keyring.verify(keyring.issue("alice", 60))["jti"] for _ in range(20)}) == 20


def test_unknown_algorithm_is_refused():
    with pytest.raises(ValueError, match="HS256"):
        Keyring("none")


def test_expired_token_is_refused(keyring):
    token = keyring.issue("alice", -5)
    with pytest.raises(TokenError, match="expired"):
        keyring.verify(token)
    report = inspect_token(token, keyring)
    assert report.expired is True and report.signature_valid is True and not report.ok


def test_tampered_claims_are_refused(keyring):
    header, claims, sig = keyring.issue("alice", 60).split(".")
    forged = json.loads(unb64(claims))
    forged["sub"] = "admin"
    token = f"{header}.{b64(json.dumps(forged).encode())}.{sig}"
    with pytest.raises(TokenError, match="signature"):
        keyring.verify(token)
    assert inspect_token(token, keyring).signature_valid is False


def test_token_from_another_keyring_is_refused(keyring):
    other = Keyring(keyring.algorithm)
    with pytest.raises(TokenError):
        keyring.verify(other.issue("alice", 60))  # unknown kid
    forged = jwt.encode(fresh_claims(), other.signing_key(), algorithm=keyring.algorithm,
                        headers={"kid": keyring.current_kid})
    with pytest.raises(TokenError, match="signature"):
        keyring.verify(forged)  # right kid, wrong key


def test_missing_required_claim_is_refused(keyring):
    claims = fresh_claims()
    del claims["jti"]
    token = jwt.encode(claims, keyring.signing_key(), algorithm=keyring.algorithm,
                       headers={"kid": keyring.current_kid})
    with pytest.raises(TokenError, match="jti"):
        keyring.verify(token)


# --------------------------------------------------------------------------- the algorithm is pinned

@pytest.mark.parametrize("none", ["none", "None", "NONE", ""])
def test_alg_none_is_refused(keyring, none):
    token = forge({"alg": none, "typ": "JWT", "kid": keyring.current_kid}, fresh_claims())
    with pytest.raises(TokenError, match="algorithm"):
        keyring.verify(token)
    report = inspect_token(token, keyring)
    assert report.signature_valid is False and not report.ok


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_token_resigned_with_another_alg_is_refused(keyring):
    kid = keyring.current_kid
    other_algs = {"HS256": ["HS384", "HS512"], "RS256": ["RS512", "PS256"], "ES256": ["HS256"]}
    for alg in other_algs[keyring.algorithm]:
        key = keyring.signing_key() if alg[:2] == keyring.algorithm[:2] or alg[:2] == "PS" else b"k" * 32
        token = jwt.encode(fresh_claims(), key, algorithm=alg, headers={"kid": kid})
        with pytest.raises(TokenError, match="algorithm"):
            keyring.verify(token)
        assert inspect_token(token, keyring).signature_valid is False


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_key_confusion_attack_is_refused(alg):
    # The classic attack: the public key is public, so sign HS256 with its PEM text as the HMAC
    # secret and hope the server feeds "its key" to whatever alg the token names.
    keyring = Keyring(alg)
    kid = keyring.current_kid
    pem = keyring.verification_key(kid).public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo)
    for secret in (pem, pem.strip(), keyring.verification_key(kid).public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)):
        token = forge({"alg": "HS256", "typ": "JWT", "kid": kid}, fresh_claims("admin"), secret)
        with pytest.raises(TokenError, match="algorithm"):
            keyring.verify(token)
        report = inspect_token(token, keyring)
        assert report.signature_valid is False and not report.ok
    # the same forgery, checked against the public key object rather than the keyring
    token = forge({"alg": "HS256", "typ": "JWT", "kid": kid}, fresh_claims("admin"), pem)
    assert inspect_token(token, keyring.verification_key(kid)).signature_valid is False


# --------------------------------------------------------------------------- rotation

def test_rotation_keeps_old_kid_until_retired(keyring):
    keyring = Keyring(keyring.algorithm)  # our own: this test changes it
    old_kid = keyring.current_kid
    old = keyring.issue("alice", 60)
    new_kid = keyring.rotate()
    assert new_kid != old_kid and keyring.current_kid == new_kid
    assert keyring.kids == [old_kid, new_kid]
    new = keyring.issue("bob", 60)
    assert jwt.get_unverified_header(new)["kid"] == new_kid
    assert keyring.verify(old)["sub"] == "alice"  # still valid after rotation
    assert keyring.verify(new)["sub"] == "bob"
    with pytest.raises(ValueError):
        keyring.retire(new_kid)  # never the current one
    keyring.retire(old_kid)
    with pytest.raises(TokenError, match="kid"):
        keyring.verify(old)
    assert keyring.verify(new)["sub"] == "bob"
    assert inspect_token(old, keyring).signature_valid is False


@pytest.mark.parametrize("kid", [None, 1, 0, True, ["k1"], {"k": 1}, "", "../../etc/passwd", "k" * 10_000])
def test_odd_kid_values_are_refused(kid):
    keyring = Keyring("HS256")
    header = {"alg": "HS256", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    token = forge(header, fresh_claims(), keyring.signing_key())
    with pytest.raises(TokenError):
        keyring.verify(token)
    assert inspect_token(token, keyring).signature_valid is False


@pytest.mark.parametrize("junk", [None, 0, 1, "", " ", [], {}, b"a.b.c", "a" * 20_000, "\x00", "ä.ö.ü"])
def test_verify_refuses_junk_with_token_error(junk):
    with pytest.raises(TokenError):
        Keyring("HS256").verify(junk)


# --------------------------------------------------------------------------- inspect_token

def parts(header: bytes | str, claims: bytes | str, sig: str = "x") -> str:
    """A three-part token from raw header and claims text (which need not be JSON objects)."""
    enc = [b64(p.encode() if isinstance(p, str) else p) for p in (header, claims)]
    return f"{enc[0]}.{enc[1]}.{sig}"


HS = '{"alg": "HS256"}'
JUNK = [
    None, 0, 1, -1, 3.14, True, b"", b"abc", b"a.b.c", bytearray(b"a.b.c"), [], ["a", "b", "c"], {}, {"alg": "none"},
    object(), "", " ", "\n", ".", "..", "...", "a.b", "a.b.c", "a.b.c.d", "a.b.c.d.e",
    "Bearer", "Bearer ", "bearer a.b.c", "!!!.@@@.###", "%%%.%%%.%%%", "====.====.====",
    parts("hello", "world"),                                  # base64 but not JSON
    parts("[]", "[]"), parts("[1,2,3]", "{}"),                # JSON arrays
    parts("1", "2", "3"), parts("null", "null", ""), parts('"str"', "true"),  # other JSON values
    parts("{}", "{}", ""),                                    # empty objects
    parts('{"alg": ["HS256"]}', '{"exp": "soon"}'),
    parts('{"alg": 256}', '{"exp": true}'),
    parts(HS, '{"exp": 1e308}'), parts(HS, '{"exp": -1e308}'),
    parts(HS, '{"exp": 1' + "0" * 400 + "}"),                 # an int beyond any float
    parts(HS, '{"exp": NaN}'), parts(HS, '{"exp": Infinity}'),
    parts('{"alg": "HS256", "kid": {"a": 1}}', "{}"),
    parts(b"\xff\xfe\xfd", b"\x00\x01"),                    # not UTF-8
    "A" * 1_000_000, "a." * 500_000, ("A" * 300_000 + ".") * 2 + "A",
    "ünï.cødé.✓", "😀.😀.😀", "\x00.\x00.\x00", "\ud800.x.y",  # unicode, NULs, a lone surrogate
    "eyJ.eyJ.eyJ", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",  # truncated; alg none
]


@pytest.mark.parametrize("key", [None, Keyring("HS256"), b"secret" * 6, "secret", 12345, object()],
                         ids=["no-key", "keyring", "bytes", "str", "int", "object"])
def test_inspect_token_never_raises_on_junk(key):
    for junk in JUNK:
        report = inspect_token(junk, key)  # must not raise
        assert isinstance(report, sl.TokenReport)
        assert isinstance(report.header, dict) and isinstance(report.claims, dict)
        assert isinstance(report.problems, list)
        assert report.signature_valid in (None, False), junk
        assert not report.ok
        assert isinstance(report.token, str)
        report._repr_html_()  # and it can be shown


@pytest.mark.parametrize("exp", ["1" + "0" * 400, "NaN", "Infinity", "-Infinity", "1e300", '"tomorrow"'])
def test_inspect_token_odd_exp_is_a_finding_and_the_signature_is_still_checked(exp):
    keyring = Keyring("HS256")
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'kid': keyring.current_kid}).encode())}." + b64(
        ('{"sub": "alice", "exp": ' + exp + "}").encode())
    sig = hmac.new(keyring.signing_key(), signing_input.encode(), hashlib.sha256).digest()
    report = inspect_token(f"{signing_input}.{b64(sig)}", keyring)
    assert report.signature_valid is True
    assert any("exp" in p for p in report.problems), report.problems
    assert not any("could not inspect" in p for p in report.problems), report.problems
    assert not report.ok
    with pytest.raises(TokenError):
        keyring.verify(f"{signing_input}.{b64(sig)}")


def test_inspect_token_decodes_without_a_key(keyring):
    token = keyring.issue("alice", 60, cart=[{"item": "book", "qty": 1}])
    report = inspect_token(token)
    assert report.signature_valid is None
    assert report.header == {"alg": keyring.algorithm, "kid": keyring.current_kid, "typ": "JWT"}
    assert report.claims["sub"] == "alice" and report.claims["cart"] == [{"item": "book", "qty": 1}]
    assert report.expired is False and 55 < report.expires_in <= 60
    assert report.problems == []
    good = inspect_token(token, keyring)
    assert good.signature_valid is True and good.ok
    assert inspect_token("Bearer " + token, keyring).ok  # pasted with its scheme


def test_inspect_token_with_raw_keys():
    for alg in ALGS:
        keyring = Keyring(alg)
        token = keyring.issue("alice", 60)
        key = keyring.verification_key(keyring.current_kid)
        assert inspect_token(token, key).signature_valid is True
        wrong = {"HS256": b"x" * 32, "RS256": rsa.generate_private_key(65537, 2048).public_key(),
                 "ES256": ec.generate_private_key(ec.SECP256R1()).public_key()}[alg]
        assert inspect_token(token, wrong).signature_valid is False


def test_inspect_token_agrees_with_rfc7515_appendix_a1():
    k = unb64(RFC_K)
    # sanity: the vector itself is right (independent of statelab and of PyJWT)
    signing_input, _, sig = RFC_TOKEN.rpartition(".")
    assert hmac.compare_digest(hmac.new(k, signing_input.encode(), hashlib.sha256).digest(), unb64(sig))

    plain = inspect_token(RFC_TOKEN)
    assert plain.header == {"typ": "JWT", "alg": "HS256"}
    assert plain.claims == {"iss": "joe", "exp": 1300819380, "http://example.com/is_root": True}
    assert plain.signature_valid is None
    assert plain.expired is True  # it expired in March 2011
    assert any("expired" in p for p in plain.problems)

    right = inspect_token(RFC_TOKEN, k)
    assert right.signature_valid is True and right.expired is True and not right.ok
    assert right.header == plain.header and right.claims == plain.claims

    assert inspect_token(RFC_TOKEN, b"\x00" + k[1:]).signature_valid is False
    assert inspect_token(RFC_TOKEN, RFC_K).signature_valid is False  # the base64 text is not the key
    # before its exp it was a perfectly good token
    then = inspect_token(RFC_TOKEN, k, now=1300819380 - 60)
    assert then.expired is False and then.ok

    # and a one-character change to the claims breaks the signature
    h, c, s = RFC_TOKEN.split(".")
    tampered = json.loads(unb64(c))
    tampered["iss"] = "eve"
    assert inspect_token(f"{h}.{b64(json.dumps(tampered).encode())}.{s}", k).signature_valid is False


class Hostile:
    """An object that fails at everything a careless inspector might call."""

    def __repr__(self) -> str:
        raise RuntimeError("repr refused")

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("eq refused")

    __hash__ = None  # type: ignore[assignment]


class HostileError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str refused")


class HostileStr(str):
    """A string whose own methods raise: the inspector must read the characters, not call them."""

    def strip(self, *args):  # noqa: ARG002
        raise HostileError()

    def __str__(self) -> str:
        raise RuntimeError("str refused")

    __repr__ = __str__


def test_inspect_token_never_raises_even_for_objects_that_refuse_to_be_shown(keyring):
    good = keyring.issue("alice", 60)
    for weird in (Hostile(), HostileStr(good), HostileStr("x"), [Hostile()], HostileError()):
        for key in (None, keyring, Hostile()):
            report = inspect_token(weird, key)
            assert type(report.token) is str and len(report.token) <= 2000
            assert report.problems or report.signature_valid in (None, True)  # a finding, never a crash
            repr(report), report._repr_html_()  # and the report itself can be shown
    report = inspect_token(HostileStr(good), keyring)
    assert report.ok and report.claims["sub"] == "alice"  # the characters are a good token
