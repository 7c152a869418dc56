"""An OpenID Connect relying party written with authlib, nobody's code here: it discovers
portico's provider, sends the browser to sign in (code flow, PKCE S256, state, nonce),
exchanges the code (client_secret_basic), verifies the ID token's signature from the JWKS
and its claims (iss, aud, exp, nonce, at_hash), and calls userinfo.

usage: relying_party.py ISSUER CLIENT_ID CLIENT_SECRET PORT RESULT_FILE [SCOPE]

GET /login starts a sign-in; GET /callback finishes it and writes RESULT_FILE (JSON:
the verified ID token claims, the userinfo answer, the raw tokens); GET /logout starts
RP-initiated logout. Errors are written to RESULT_FILE as {"error": ...}.
"""

import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken

issuer, client_id, client_secret, port, result_file = sys.argv[1:6]
scope = sys.argv[6] if len(sys.argv) > 6 else "openid email profile access"
meta = requests.get(issuer + "/.well-known/openid-configuration", timeout=10).json()
assert meta["issuer"] == issuer, meta
redirect_uri = f"http://127.0.0.1:{port}/callback"
pending = {}
signed_in = {}


def session(**extra):
    return OAuth2Session(
        client_id,
        client_secret,
        scope=scope,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
        **extra,
    )


def write(result):
    with open(result_file + ".tmp", "w") as f:
        json.dump(result, f)
    import os

    os.replace(result_file + ".tmp", result_file)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, text, location=None):
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(f"<!doctype html><title>RP</title><p id=rp>{text}</p>".encode())

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/login":
            verifier = generate_token(64)
            nonce = generate_token(24)
            extra = dict(urllib.parse.parse_qsl(url.query))
            auth_url, state = session().create_authorization_url(
                meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce, **extra
            )
            pending[state] = (verifier, nonce)
            return self.answer(302, "to sign in", auth_url)
        if url.path == "/callback":
            try:
                params = dict(urllib.parse.parse_qsl(url.query))
                if "error" in params:
                    write({"error": params["error"], "iss": params.get("iss")})
                    return self.answer(200, "refused: " + params["error"])
                assert params.get("iss") == issuer, params
                verifier, nonce = pending.pop(params["state"])
                client = session(state=params["state"])
                token = client.fetch_token(
                    meta["token_endpoint"],
                    authorization_response=f"http://127.0.0.1:{port}{self.path}",
                    code_verifier=verifier,
                )
                keys = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
                claims = jwt.decode(
                    token["id_token"],
                    keys,
                    claims_cls=CodeIDToken,
                    claims_options={"iss": {"essential": True, "value": issuer}},
                    claims_params={"nonce": nonce, "client_id": client_id, "access_token": token["access_token"]},
                )
                claims.validate()
                userinfo = client.get(meta["userinfo_endpoint"]).json()
                signed_in["id_token"] = token["id_token"]
                write({"claims": dict(claims), "userinfo": userinfo, "token": dict(token), "header": dict(claims.header)})
                return self.answer(200, "signed in as " + str(userinfo.get("email")))
            except Exception as e:  # the test reads what went wrong
                write({"error": f"{type(e).__name__}: {e}"})
                return self.answer(500, "failed")
        if url.path == "/logout":
            query = urllib.parse.urlencode(
                {
                    "id_token_hint": signed_in.get("id_token", ""),
                    "post_logout_redirect_uri": f"http://127.0.0.1:{port}/",
                    "state": "bye",
                }
            )
            return self.answer(302, "to sign out", meta["end_session_endpoint"] + "?" + query)
        if url.path == "/":
            return self.answer(200, "home " + url.query)
        return self.answer(404, "not found")


ThreadingHTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()
