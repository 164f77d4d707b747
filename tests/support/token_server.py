#!/usr/bin/env python3
"""A registry token service for tests (the Docker token protocol docker-registry trusts).

Usage: token_server.py PORT KEY_PEM CERT_PEM USER PASSWORD ISSUER SERVICE REFRESH_TOKEN

GET /token?scope=repository:NAME:ACTIONS&service=SERVICE with HTTP Basic USER:PASSWORD
answers {"token": JWT}: RS256, signed with KEY_PEM by `openssl dgst`, the certificate in
the `x5c` header, granting ACTIONS on NAME. POST /token with the form
grant_type=refresh_token&refresh_token=REFRESH_TOKEN&scope=...&service=...&client_id=...
(OAuth2, how docker exchanges an identity token) answers {"access_token": JWT}. Wrong or
missing credentials get 401. Only the standard library and the openssl tool; listens on
127.0.0.1 only.
"""
import base64
import json
import os
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

port, key, cert, user, password, issuer, service, refresh_token = sys.argv[1:9]
der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"],
                     check=True, capture_output=True).stdout
expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(scope: str) -> str:
    access = []
    if scope:
        kind, name, actions = scope.split(":", 2)
        access.append({"type": kind, "name": name, "actions": actions.split(",")})
    now = int(time.time())
    header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
    claims = {"iss": issuer, "sub": user, "aud": service, "exp": now + 600,
              "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(), "access": access}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key],
                               input=signing_input.encode(), check=True,
                               capture_output=True).stdout
    return signing_input + "." + b64url(signature)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        if url.path != "/token":
            self.send_error(404)
            return
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.end_headers()
            return
        query = parse_qs(url.query)
        body = json.dumps({"token": token(query.get("scope", [""])[0])}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        if urlparse(self.path).path != "/token":
            self.send_error(404)
            return
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        field = lambda name: form.get(name, [""])[0]
        if (self.headers.get("Content-Type") != "application/x-www-form-urlencoded"
                or field("grant_type") != "refresh_token"
                or field("refresh_token") != refresh_token
                or field("service") != service or not field("client_id")):
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"access_token": token(field("scope")), "token_type": "Bearer",
                           "expires_in": 600}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()
