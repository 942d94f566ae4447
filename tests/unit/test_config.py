"""One ShopConfig through every door: create_app, Server, Cluster and gunicorn's entry point; a typed ShopState."""

from __future__ import annotations

import dataclasses

import pytest

import statelab as sl
from statelab.shop.app import create_app
from statelab.shop.config import ShopConfig, ShopState


def test_the_config_is_frozen_and_refuses_a_design_that_does_not_fit():
    config = ShopConfig("stateless", token_ttl=60)
    assert config.cart == "token" and config.token_ttl == 60.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.mode = "stateful"  # type: ignore[misc]
    with pytest.raises(ValueError, match="does not fit"):
        ShopConfig("stateful", cart="token")
    with pytest.raises(TypeError, match="unknown option colour"):
        ShopConfig.of(colour="red")


def test_keywords_and_a_config_build_the_same_app():
    by_words = create_app("stateless", token_ttl=60, csrf_guard=False).extensions["statelab"]
    by_config = create_app(config=ShopConfig("stateless", token_ttl=60, csrf_guard=False)).extensions["statelab"]
    for state in (by_words, by_config):
        assert isinstance(state, ShopState)
        assert (state.mode, state.cart, state.token_ttl, state.csrf_guard) == ("stateless", "token", 60.0, False)


def test_the_state_still_answers_as_the_mapping_labs_use():
    state = create_app("stateless").extensions["statelab"]
    assert state["keyring"] is state.keyring and state["mode"] == "stateless" and "current" in state
    state["key"] = "shared"  # what the gunicorn entry point adds
    assert state["key"] == "shared" and state.get("missing", 1) == 1
    state.setdefault("keyed_paths", set()).add("/cart")
    assert "/cart" in state.keyed_paths
    with pytest.raises(KeyError):
        state["no such part"]


def test_a_cluster_hands_every_server_one_config_and_the_guard_lives_in_one_place():
    with sl.Cluster(2, "stateless", csrf_guard=False, token_ttl=30) as c:
        assert all(s.config is c.config for s in c.servers)
        assert c.config.keyring is c.keyring and c.config.token_ttl == 30.0
        assert not c.csrf_guard
        c.csrf_guard = True
        assert c.csrf_guard and c.config.csrf_guard
        assert all(s.config.csrf_guard and s.state.csrf_guard for s in c.servers)
        added = c.add_server()
        assert added.csrf_guard  # a server added later starts with the new value


def test_a_server_keeps_its_config_across_a_restart():
    server = sl.Server("stateless", token_ttl=45)
    with server.start():
        keyring = server.keyring
        server.restart()
        assert server.keyring is keyring and server.state.token_ttl == 45.0
