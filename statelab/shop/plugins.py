"""Reusable app plugins: small additions to a bookshop server, passed as ``plugins=[...]``.

A plugin is called as ``plugin(app)`` after the routes exist (see :func:`statelab.shop.app.create_app`);
it may add routes or request hooks, and asks ``app.extensions["statelab"]["current"]()`` who is
asking. Lessons and experiments share the ones here instead of keeping copies.
"""
