"""The bookshop: the Flask app and its two choices, who you are and where the data lives.

``app`` (the app factory and its HTTP contract), ``sessions`` (server-side session stores),
``tokens`` (JWT keys and inspection), ``page`` (the HTML page), ``proxy`` (cookie paths behind
Jupyter's proxy) and ``server`` (one bookshop served on 127.0.0.1, that can crash).
"""
