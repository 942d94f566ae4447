"""The token lifecycle as practised (statelab/shop/lifecycle.py), over real HTTP on a stateless cluster.

Short access tokens checked without a lookup; refresh tokens kept (hashed) on the server, rotated on use, a reused
one ending its whole family (the theft scenario); logout ending the family; aud and iss checked (RFC 8725
3.8-3.10); the public keys published as JWKS and picked by kid, by PyJWT's own JWKS client.
"""

from __future__ import annotations

import time

import jwt
import pytest

import statelab as sl
from statelab.shop.lifecycle import RefreshFamilies, token_lifecycle
from statelab.shop.tokens import Keyring


def _bearer(client: sl.Client, path: str, access: str) -> sl.client.Exchange:
    return client.get(path, headers={"Authorization": f"Bearer {access}"})


def _early_in_a_second() -> None:
    """Wait until a new whole second has just begun. A token's ``exp`` is whole seconds (``int(now) + ttl``), so a
    1 s token issued late in a second may be expired a few milliseconds later (CI saw it)."""
    time.sleep(1.0 - time.time() % 1.0 + 0.02)


@pytest.fixture
def shop():
    families = RefreshFamilies()
    with sl.Cluster(2, "stateless", algorithm="RS256", balancer="round_robin",
                    plugins=[token_lifecycle(families, access_ttl=1)]) as cluster:
        yield cluster, families


def test_access_expires_refresh_renews_and_a_reused_refresh_token_ends_the_family(shop):
    cluster, families = shop
    alice, thief = sl.Client(cluster.url), sl.Client(cluster.url)
    _early_in_a_second()
    first = alice.post("/auth/login", {"user": "alice"}).body
    assert _bearer(alice, "/auth/me", first["access_token"]).status == 200
    time.sleep(2.1)  # past the 1 s access ttl (exp is whole seconds)
    expired = _bearer(alice, "/auth/me", first["access_token"])
    assert expired.status == 401 and "expired" in expired.body["error"]
    stolen = first["refresh_token"]
    _early_in_a_second()
    second = alice.post("/auth/refresh", {"refresh_token": first["refresh_token"]})
    assert second.status == 200 and second.body["refresh_token"] != stolen
    assert _bearer(alice, "/auth/me", second.body["access_token"]).status == 200
    reuse = thief.post("/auth/refresh", {"refresh_token": stolen})
    assert reuse.status == 401 and "reused" in reuse.body["error"]
    after = alice.post("/auth/refresh", {"refresh_token": second.body["refresh_token"]})
    assert after.status == 401 and "revoked" in after.body["error"], "the whole family ends, the user's token too"
    again = alice.post("/auth/login", {"user": "alice"})
    assert again.status == 200


def test_logout_ends_the_family_and_bad_input_is_a_json_4xx(shop):
    cluster, families = shop
    c = sl.Client(cluster.url)
    pair = c.post("/auth/login", {"user": "bob"}).body
    assert c.post("/auth/logout", {"refresh_token": pair["refresh_token"]}).status == 204
    gone = c.post("/auth/refresh", {"refresh_token": pair["refresh_token"]})
    assert gone.status == 401 and "revoked" in gone.body["error"]
    for body in (None, {}, {"refresh_token": 5}, {"refresh_token": "x" * 5000}):
        ex = c.post("/auth/refresh", body)
        assert ex.status in (400, 401) and isinstance(ex.body, dict) and "error" in ex.body, ex.summary()
    assert c.post("/auth/login", {"user": "u" * 65}).status == 400
    assert len(families) == 0 and families.stored_bytes() == 0


def test_wrong_audience_or_issuer_is_refused_though_the_signature_is_good(shop):
    cluster, _ = shop
    c = sl.Client(cluster.url)
    ring = cluster.keyring
    good = ring.issue("carol", 60, aud="statelab-shop", iss="https://auth.statelab.invalid")
    assert _bearer(c, "/auth/me", good).status == 200
    for claims, word in (({"aud": "billing-api", "iss": "https://auth.statelab.invalid"}, "audience"),
                         ({"aud": "statelab-shop", "iss": "https://evil.invalid"}, "issuer"),
                         ({"iss": "https://auth.statelab.invalid"}, "aud"),
                         ({"aud": "statelab-shop"}, "iss")):
        ex = _bearer(c, "/auth/me", ring.issue("carol", 60, **claims))
        assert ex.status == 401 and word in ex.body["error"], (claims, ex.body)


def test_jwks_publishes_every_accepted_key_and_a_verifier_picks_by_kid(shop):
    cluster, _ = shop
    c = sl.Client(cluster.url)
    ring = cluster.keyring
    before = ring.issue("dave", 60, aud="statelab-shop", iss="https://auth.statelab.invalid")
    ring.rotate()
    after = ring.issue("dave", 60, aud="statelab-shop", iss="https://auth.statelab.invalid")
    doc = c.get("/.well-known/jwks.json").body
    assert sorted(k["kid"] for k in doc["keys"]) == sorted(ring.kids) and len(doc["keys"]) == 2
    assert all("d" not in k and k["alg"] == "RS256" for k in doc["keys"]), "only public parts are published"
    client = jwt.PyJWKClient(f"{cluster.servers[0].url}/.well-known/jwks.json")
    for token in (before, after):
        key = client.get_signing_key_from_jwt(token)
        assert key.key_id == jwt.get_unverified_header(token)["kid"]
        claims = jwt.decode(token, key.key, algorithms=["RS256"], audience="statelab-shop",
                            issuer="https://auth.statelab.invalid")
        assert claims["sub"] == "dave"


def test_an_hs256_keyring_publishes_no_jwks():
    with pytest.raises(ValueError, match="never published"):
        Keyring("HS256").jwks()
    with sl.Cluster(1, "stateless", plugins=[token_lifecycle(RefreshFamilies())]) as cluster:
        ex = sl.Client(cluster.url).get("/.well-known/jwks.json")
        assert ex.status == 404 and "never published" in ex.body["error"]


def test_refresh_families_count_lookups_and_writes():
    families = RefreshFamilies()
    r1 = families.start("alice")
    assert (families.lookups, families.writes, len(families)) == (0, 1, 1)
    _, r2 = families.rotate(r1)
    assert (families.lookups, families.writes, len(families)) == (1, 3, 2)
    with pytest.raises(sl.TokenError, match="reused"):
        families.rotate(r1)
    assert len(families) == 0
    with pytest.raises(sl.TokenError, match="revoked"):
        families.rotate(r2)
