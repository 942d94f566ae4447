"""The bookshop: the Flask app and its two choices, who you are and where the data lives.

``app`` (the app factory and its HTTP contract), ``identity`` (who you are: session id, bearer token or
signed cookie), ``carts`` (where the cart lives), ``sessions`` (server-side session stores), ``sqlite`` (the
shared table store), ``rules`` (input limits and validation), ``plugins`` (hooks a learner adds to the app),
``tokens`` (JWT keys and inspection), ``page`` (the HTML page), ``proxy`` (cookie paths behind
Jupyter's proxy) and ``server`` (one bookshop served on 127.0.0.1, that can crash).
"""
