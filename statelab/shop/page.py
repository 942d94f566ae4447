"""A small HTML page for the bookshop, so a learner can use a server from a normal browser tab.

Open a server's url in your browser and use its developer tools (Application > Cookies, and
Network) to see the real ``Set-Cookie`` and ``Authorization`` headers. All links and
``fetch`` calls are relative, so the page also works behind jupyter-server-proxy's
``/proxy/<port>/`` prefix on Binder. The inline script runs under a per-response CSP nonce.
"""

from __future__ import annotations

import html

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>statelab bookshop: {name}</title>
<style nonce="{nonce}">
 body {{ font: 15px/1.45 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; }}
 button, input, select {{ font: inherit; margin: .15rem; }}
 pre {{ background: #8881; padding: .6rem; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }}
 .mode {{ display: inline-block; padding: 0 .4rem; border-radius: .3rem; background: #5b9bd533; }}
</style></head>
<body>
<h1>statelab bookshop</h1>
<p>Server <b id="server">{name}</b>, mode <span class="mode" id="mode">{mode}</span>. {hint}</p>
<p><label>User <input id="user" value="alice" maxlength="64"></label>
<button id="login">Log in</button> <button id="me">Me</button> <button id="logout">Log out</button></p>
<p><label>Book <select id="item">{options}</select></label>
<button id="add">Add to cart</button> <button id="cart">Cart</button></p>
<h2>Last answer</h2><pre id="out">(nothing yet)</pre>
<h2>What this tab holds</h2><pre id="held"></pre>
<script nonce="{nonce}">
let token = null;
const out = document.getElementById("out"), held = document.getElementById("held");
function show() {{
  held.textContent = token
    ? "A token, kept by this page's script (read its claims: is the cart inside?):\\n" + token + "\\n\\nclaims: " +
      JSON.stringify(JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))), null, 2)
    : "No token. Session cookies are HttpOnly, so this script cannot read them: " +
      "open the developer tools (Application > Cookies) to see them.";
}}
async function call(method, path, body) {{
  const headers = {{"Content-Type": "application/json"}};
  if (token) headers["Authorization"] = "Bearer " + token;
  try {{
    const r = await fetch(path, {{method, headers, body: body ? JSON.stringify(body) : undefined,
                                  credentials: "same-origin"}});
    const data = await r.json().catch(() => ({{}}));
    if (data.token) token = data.token;
    if (path === "logout" && r.ok) token = null;
    out.textContent = method + " " + path + " -> " + r.status + " (served by " +
      (r.headers.get("X-Served-By") || "?") + ")\\n" + JSON.stringify(data, null, 2);
  }} catch (e) {{ out.textContent = method + " " + path + " failed: " + e; }}
  show();
}}
const val = id => document.getElementById(id).value;
document.getElementById("login").onclick = () => call("POST", "login", {{user: val("user")}});
document.getElementById("me").onclick = () => call("GET", "me");
document.getElementById("logout").onclick = () => call("POST", "logout");
document.getElementById("add").onclick = () => call("POST", "cart", {{item: val("item"), qty: 1}});
document.getElementById("cart").onclick = () => call("GET", "cart");
show();
</script></body></html>
"""

HINTS = {
    "stateful": "Your session lives on the server; this tab holds only its id, in an HttpOnly cookie.",
    "stateless": "The server keeps no session; this tab holds a signed token with your cart inside.",
    "cookie": "Your state lives in a signed cookie: readable in the developer tools, not changeable.",
}
DB_HINTS = {
    "stateful": "This tab holds only a session id, in an HttpOnly cookie; your cart is in a shared database.",
    "stateless": "The server keeps no session; this tab holds a signed token that says who you are. "
                 "Your cart is in a shared database, not in the token.",
    "cookie": "A signed cookie says who you are (readable in the developer tools, not changeable); "
              "your cart is in a shared database.",
}


def render(name: str, mode: str, items: list[str], nonce: str, cart: str | None = None) -> str:
    """The page for one server; every inserted value is escaped."""
    options = "".join(f'<option value="{html.escape(i)}">{html.escape(i)}</option>' for i in items)
    hint = (DB_HINTS if cart == "db" else HINTS).get(mode, "")
    return PAGE.format(name=html.escape(name), mode=html.escape(mode), hint=html.escape(hint),
                       options=options, nonce=html.escape(nonce))
