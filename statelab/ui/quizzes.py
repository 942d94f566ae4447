"""The end-of-notebook quizzes, as data: ``QUIZZES["04"]`` is notebook 04's list of questions.

Every wrong option carries feedback that names the misconception it stands for, so a learner who
picks it learns why; the right option's feedback says why it is right. Questions ask about
mechanisms, not about numbers one run measured. ``sl.ui.quiz("04")`` shows one.
"""

from __future__ import annotations

from .quiz import Option as O
from .quiz import Question as Q

QUIZZES: dict[str, list[Q]] = {
    "00": [
        Q("A JWT identifies alice. Where does her cart live?", (
            O("Inside the token, necessarily", "Misconception: 'stateless' means 'data in the token'. Who you are "
              "and where the cart lives are two separate choices: a token can carry identity only."),
            O("It depends: in the token, or in a shared database keyed by user", "Right: token + cart in token and "
              "token + cart in db both use a JWT; they differ on the second axis.", correct=True),
            O("In the server's session", "Misconception: a token server keeps no session to put it in."),
        )),
        Q("Every server is killed and started again. Why does session + memory forget alice?", (
            O("Its sessions lived in process memory, and a restart is a new process", "Right: memory dies with its "
              "process; a store on disk, a database, or a token the browser holds outlive it.", correct=True),
            O("Because its cookie expired", "Misconception: the cookie is still in the browser; the session it "
              "points to is gone from the server."),
            O("Because session ids are not signed", "Misconception: an id does not need a signature; it is a "
              "random key into the server's store, and the store was emptied."),
        )),
        Q("What can anyone who holds a JWT do with its claims?", (
            O("Read them, but not change them without the key", "Right: a JWT is signed, not encrypted.",
              correct=True),
            O("Nothing: the claims are encrypted", "Misconception: a JWT's claims are base64url, readable by "
              "anyone; the signature only shows whether they were changed."),
            O("Change them freely: the server trusts the token", "Misconception: the server checks the signature; "
              "a changed claim no longer matches it."),
        )),
    ],
    "01": [
        Q("What does the browser hold in a stateful design?", (
            O("A random session id, nothing else", "Right: the data sits in the server's store; the id is a key "
              "to it.", correct=True),
            O("The user name and the cart, encrypted", "Misconception: that is a token or a signed cookie; a "
              "session id carries no data."),
            O("A hash of the password", "Misconception: no credential is stored in the cookie; the id is random."),
        )),
        Q("Why does the server hand out a new session id at every login?", (
            O("To defeat session fixation: an id planted before login is worthless after it", "Right: mallory's "
              "planted id would otherwise become alice's logged-in session.", correct=True),
            O("To save memory", "Misconception: a new id costs the same; it is a security measure."),
            O("Because ids expire at login", "Misconception: ids expire when idle, not at login."),
        )),
        Q("A page on another port of 127.0.0.1 posts a form to the shop. Does SameSite=Lax stop the cookie?", (
            O("No: every port of one host is the same site, so the cookie goes along", "Right: 'site' is not "
              "'origin'; the CSRF guard (JSON-only bodies, Origin check) is what refuses it.", correct=True),
            O("Yes: SameSite blocks every other origin", "Misconception: SameSite works on sites (registrable "
              "domains), not origins; ports and sibling subdomains are the same site."),
            O("Yes: a JSON API cannot be reached by a form", "Misconception: a text/plain form body can be "
              "JSON-shaped; only a server that insists on Content-Type: application/json refuses it."),
        )),
    ],
    "02": [
        Q("Mallory edits the cart inside her token and sends it back. What happens?", (
            O("It is refused: the signature no longer matches", "Right: the signature covers header and claims.",
              correct=True),
            O("It is accepted: the cart is hers to edit", "Misconception: the user can read the claims, not change "
              "them unnoticed."),
            O("It is accepted if she sets alg to none", "Misconception: the server pins the algorithms it accepts; "
              "the token's header does not get a vote."),
        )),
        Q("Alice logs out of the stateless shop. A thief copied her token before. What happens?", (
            O("The copy works until its exp", "Right: the server stored nothing it could delete; only the lifetime, "
              "the key, or a deny list (server-side state again) ends it.", correct=True),
            O("The copy stops working at once", "Misconception: that is a stateful logout, which deletes the "
              "session the copy points to."),
            O("The copy works forever", "Misconception: a token carries an exp the server checks."),
        )),
        Q("The cart lives in a database, the token says only who you are. What happens to the token as the "
          "cart grows?", (
            O("It stays the same size", "Right: identity only; the cart is a row keyed by user.", correct=True),
            O("It grows with every item", "Misconception: that is token + cart in token."),
            O("It is re-signed with every item", "Misconception: with the cart in the db a cart write changes no "
              "claim, so no new token is needed."),
        )),
    ],
    "03": [
        Q("Sessions live in each server's memory, round robin, N servers. Why do requests fail to find their "
          "session?", (
            O("A request finds its session only on the one server that holds it: about 1 in N", "Right: it is a "
              "routing question, not a capacity one.", correct=True),
            O("The servers are overloaded", "Misconception: the requests are answered (401), just by a server "
              "that never saw the session."),
            O("Sessions expire faster with more servers", "Misconception: nothing expires; the session is on "
              "another server."),
        )),
        Q("In this notebook, what does adding a server add?", (
            O("A thread in the same process: no CPU, so no capacity", "Right: one process on one machine cannot "
              "show capacity; it can show routing and shared limits.", correct=True),
            O("Capacity, in proportion to the servers", "Misconception: every server is a thread of one Python "
              "process here."),
            O("Nothing at all", "Misconception: it adds a server to route to, which is what breaks per-server "
              "memory sessions."),
        )),
        Q("Token + cart in db: any server answers any request. What still limits writes as servers are added?", (
            O("The shared database's single writer", "Right: the state moved into the data tier; its write lock "
              "is shared by every server.", correct=True),
            O("Nothing: stateless scales without limit", "Misconception: the state did not vanish, it moved into "
              "a store every server writes to."),
            O("The token check", "Misconception: a token check is local CPU work on each server and needs no "
              "shared part."),
        )),
    ],
    "04": [
        Q("server-1 crashes. With sessions in each server's memory, whose carts are lost?", (
            O("Those whose session was on server-1", "Right: a process's memory dies with it, and nothing else's.",
              correct=True),
            O("Every user's, on every server", "Misconception (the seed's wording): a crash does not reach "
              "sessions stored on other servers."),
            O("Nobody's: the balancer moves them", "Misconception: the balancer moves the requests, not the "
              "memory; the new server never heard of them."),
        )),
        Q("Why does the balancer re-send a GET cut by a crash but not a plain POST /cart?", (
            O("A GET is idempotent; a repeated POST might add the item twice", "Right: RFC 9110 lets a proxy "
              "repeat only idempotent requests; an Idempotency-Key extends that to POST.", correct=True),
            O("POSTs are slower", "Misconception: speed has nothing to do with it; whether a repeat is safe does."),
            O("The balancer cannot read POST bodies", "Misconception: it can; it must not act twice."),
        )),
        Q("The shared session store goes down while every server is fine. Who is affected?", (
            O("Every user, on every server", "Right: the shared part is one that every server needs.",
              correct=True),
            O("Only the users of one server", "Misconception: that is what a server crash does to per-server "
              "memory sessions."),
            O("Nobody: the servers cache sessions", "Misconception: these servers read the store on every request."),
        )),
    ],
    "05": [
        Q("What is most of the cost of checking a JWT with PyJWT?", (
            O("Parsing: base64, JSON, header and claims", "Right: the HMAC itself is a small part of an HS256 "
              "check.", correct=True),
            O("The cryptography", "Misconception: the seed credits the cost to crypto; timing the HMAC alone over "
              "the same bytes shows it is a small part for HS256."),
            O("A network call to the issuer", "Misconception: a token check is local; no network is involved."),
        )),
        Q("Which costs a server less per request here: a memory session lookup or a token check?", (
            O("The memory session lookup", "Right: a dictionary lookup is far cheaper than any signature check.",
              correct=True),
            O("The token check: no session overhead", "Misconception: 'no session lookup' does not mean 'no "
              "work'; the token must be checked on every request."),
            O("They cost exactly the same", "Misconception: they are different work, measured apart."),
        )),
        Q("With the cart in the token, what does every cart write cost a stateless server?", (
            O("A new signature, with the private key every server holds", "Right: the answer carries a new token; "
              "for RS256 signing is the expensive direction.", correct=True),
            O("Nothing extra", "Misconception: a changed cart means changed claims, and changed claims need a new "
              "signature."),
            O("A call to a login service", "Misconception: here every server signs itself, so every server holds "
              "the key."),
        )),
    ],
    "06": [
        Q("Where does the cart cost resources in token + cart in token?", (
            O("Bytes on every request the browser sends", "Right: the state moved to the client and comes back "
              "with each request.", correct=True),
            O("Nowhere: stateless uses no resources", "Misconception: state does not vanish; it moves."),
            O("Server memory per user", "Misconception: a token server holds nothing per user."),
        )),
        Q("Why can a cart in the token hit a hard limit?", (
            O("A browser keeps at most about 4 KB in one cookie", "Right: and servers refuse headers beyond a few "
              "kilobytes.", correct=True),
            O("JWTs have a fixed size", "Misconception: a JWT grows with its claims."),
            O("The signature grows with the cart", "Misconception: the signature has a fixed size per algorithm; "
              "the claims grow."),
        )),
        Q("How does a stateful server give memory back?", (
            O("By expiring idle sessions (and logout)", "Right: users rarely log out, so expiry does the work.",
              correct=True),
            O("It never needs to", "Misconception: sessions cost memory until they end."),
            O("By moving sessions into the cookie", "Misconception: that changes the design; the cookie holds "
              "only the id."),
        )),
    ],
    "07": [
        Q("A shared cache keyed by URL alone sits in front of a token shop. Can bob get alice's cart?", (
            O("Yes: a cache decides from the answer's headers, not from the design", "Right: a stateless server "
              "does not make per-user answers safe to share.", correct=True),
            O("No: a token shop has no session to leak", "Misconception: the cart is per-user data whatever "
              "identifies the user."),
            O("Only if the shop uses cookies", "Misconception: a URL-only key ignores the Authorization header "
              "just as it ignores cookies."),
        )),
        Q("What does Cache-Control: private tell a shared cache?", (
            O("Do not store this: only the user's own browser may", "Right.", correct=True),
            O("Encrypt this answer", "Misconception: private is about who may store it, not about secrecy on the "
              "wire."),
            O("Store it, keyed by cookie", "Misconception: that is what public with Vary: Cookie allows."),
        )),
        Q("The public catalog is marked public with an ETag. When a stored copy goes stale, what does a correct "
          "cache do?", (
            O("Ask 'still this version?' with If-None-Match; a 304 has no body", "Right: revalidation.",
              correct=True),
            O("Fetch the whole answer again", "Misconception: the ETag lets it revalidate instead."),
            O("Keep serving it forever", "Misconception: max-age limits how long it may answer by itself."),
        )),
    ],
    "08": [
        Q("A rolling restart replaces every server. Which design logs users out?", (
            O("Session + memory", "Right: a deploy is a planned crash; memory does not survive it.", correct=True),
            O("Every design", "Misconception: shared stores and tokens outlive the processes."),
            O("The token designs", "Misconception: a token stays valid on a new server that shares the key."),
        )),
        Q("What does draining protect?", (
            O("Requests in flight on the server being replaced", "Right: draining is about requests, not sessions, "
              "and matters in every design.", correct=True),
            O("Sessions in memory", "Misconception: draining lets requests finish; the memory still goes."),
            O("Nothing in a stateless design", "Misconception: a process that exits mid-request cuts it whatever "
              "the design."),
        )),
        Q("You rotate the token signing key and drop the old key at once. What happens?", (
            O("Every token user is logged out", "Right: keep the old key for a grace period as long as a token "
              "lives.", correct=True),
            O("Nothing: tokens carry their own key", "Misconception: a token names its key (kid); the server "
              "must still hold it."),
            O("Only new logins fail", "Misconception: new logins get the new key; old tokens fail."),
        )),
    ],
    "09": [
        Q("Eight tabs add a book to one cart at the same moment, the cart in the token. Why are books lost?", (
            O("Each answer is a token with the old cart plus one book; the browser keeps one", "Right: the last "
              "token wins.", correct=True),
            O("The server is too slow", "Misconception: every request succeeded; the results overwrite each "
              "other."),
            O("Tokens cannot hold eight books", "Misconception: size is not the problem here; concurrency is."),
        )),
        Q("A retried confirm made a second order. What stops that?", (
            O("An Idempotency-Key the server remembers, and replays the answer for", "Right: a record on the "
              "server, shared by every server that might get the retry.", correct=True),
            O("Making each request isolated", "Misconception: each request already was isolated; nothing said it "
              "was a repeat."),
            O("A faster network", "Misconception: retries happen whenever an answer is lost."),
        )),
        Q("What keeps concurrent updates of a server-side cart correct?", (
            O("An atomic read-modify-write: a lock or a transaction", "Right: a naive read-then-write loses "
              "updates in any design.", correct=True),
            O("Keeping the cart in a session", "Misconception: the naive session store shows a session alone does "
              "not."),
            O("Nothing: servers handle one request at a time", "Misconception: they run requests on threads, at "
              "the same time."),
        )),
    ],
    "10": [
        Q("Which designs need sticky routing (affinity) to keep users logged in?", (
            O("Only session + memory", "Right: it is about where the state lives, not about tokens.",
              correct=True),
            O("Every session design", "Misconception: a shared session store lets any server answer."),
            O("None: balancers handle it", "Misconception: round robin sends a memory session's requests to "
              "servers that never saw it."),
        )),
        Q("Why do sticky and ip_hash spread a skewed crowd unevenly?", (
            O("Load follows users, and a few heavy users are pinned to one server", "Right.", correct=True),
            O("They are buggy", "Misconception: they do what they promise: pin users."),
            O("Because of tokens", "Misconception: affinity is uneven in every design."),
        )),
        Q("ip_hash picks hash(address) mod N. A server is added. What happens?", (
            O("Most addresses move to another server", "Right: consistent hashing would move about 1/(N+1).",
              correct=True),
            O("Only about 1/(N+1) move", "Misconception: that is consistent hashing, not mod N."),
            O("Nobody moves", "Misconception: N changed, so most results of mod N change."),
        )),
    ],
    "11": [
        Q("Alice logs out; a thief copied her credential. Whose copy still works?", (
            O("A stolen token's, until it expires", "Right: the server stored nothing it could delete.",
              correct=True),
            O("A stolen session id's", "Misconception: logout deleted the session; the id points at nothing."),
            O("Neither", "Misconception: a token is checked by signature alone."),
        )),
        Q("Which concern does a bearer token bring that an HttpOnly cookie does not?", (
            O("Theft by a script in the page (XSS)", "Right: the page's script holds the token, so any script can.",
              correct=True),
            O("Cross-site request forgery", "Misconception: the browser does not attach a bearer token by itself; "
              "CSRF is the cookie's concern."),
            O("Session fixation", "Misconception: fixation is about a server keeping a planted session id."),
        )),
        Q("Logout deleted the session, yet a shared cache still serves the user's cart. Why?", (
            O("Revocation happens where state is checked; the cache answers without asking", "Right: per-user "
              "answers in a shared cache outlive the session.", correct=True),
            O("Logout failed", "Misconception: asking the server directly shows the session is gone."),
            O("The cache holds the session store", "Misconception: it holds answers, not sessions."),
        )),
    ],
    "12": [
        Q("Which choice decides whether a cart survives a server crash?", (
            O("Where the data lives", "Right: memory on one server ties the cart to it; shared storage or a "
              "token does not.", correct=True),
            O("Who you are (session id or token)", "Misconception: a session in a shared store survives too."),
            O("The load-balancing strategy", "Misconception: the strategy moves requests, not memory."),
        )),
        Q("Which choice decides whether logout stops a stolen credential at once?", (
            O("Who you are: a looked-up session id can be deleted", "Right: a token is checked by signature alone.",
              correct=True),
            O("Where the data lives", "Misconception: token + cart in db keeps data in a db, and a stolen token "
              "still works."),
            O("The signing algorithm", "Misconception: no algorithm lets a server forget a token it never stored."),
        )),
        Q("A 'stateless application tier' in production usually means...", (
            O("App servers keep no session; data lives in a shared database", "Right: token + cart in db, the "
              "state moved to the data tier.", correct=True),
            O("No state anywhere", "Misconception: the state moved, it did not vanish."),
            O("All data in the token", "Misconception: that is one design, with growing tokens and lost updates."),
        )),
    ],
    "13": [
        Q("gunicorn runs 2 workers. Which worker answers your next request?", (
            O("Whichever takes the connection first: the operating system hands it out, not your login", "Right: "
              "every worker waits on the one socket the master opened; nothing routes you back to a worker.",
              correct=True),
            O("The one that answered your login: the master remembers you", "Misconception: the master forks and "
              "replaces workers; it never sees requests, so it cannot route a user anywhere."),
            O("They take turns, like round robin", "Misconception: there is no turn order; the kernel gives each "
              "new connection to a worker that is waiting, so the mix changes from run to run."),
        )),
        Q("Each worker makes its signing key with os.urandom when it starts. Why are token users refused?", (
            O("A token signed by one worker does not verify with another worker's key", "Right: a token carries no "
              "server state, but it needs the same key on every worker; a key belongs in configuration.",
              correct=True),
            O("Tokens are stateless, so they cannot be refused", "Misconception: a token is checked on every "
              "request, and the check needs the key; a different key refuses it."),
            O("The workers share memory, so the keys overwrite each other", "Misconception: forked workers do not "
              "share what they write to memory; each has its own key, and that is the problem."),
        )),
        Q("Sessions move from each worker's memory into one Redis. What do you buy, and what does it cost?", (
            O("Any worker can answer, at a round trip to Redis per request, and Redis becomes a part every worker "
              "needs", "Right: the state moved out of the workers into one store; it survives a worker crash, "
              "and while the store is down every session user is refused.", correct=True),
            O("Any worker can answer, and nothing else changes", "Misconception: a store outside the process is a "
              "network round trip on every request, and one more part that can fail for everyone."),
            O("Sessions now survive anything, Redis included", "Misconception: a Redis without persistence comes "
              "back empty; surviving its own crash takes an append-only file or a replica."),
        )),
    ],
}
