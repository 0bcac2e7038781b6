"""The HTTP API the scheduled ingester pulls in the end-to-end tests: two pages of customer
records (the second with a duplicate and a bad email) behind a bearer key."""

from __future__ import annotations

import json
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any

API_KEY = "e2e-" + uuid.uuid4().hex  # a secret: must never appear in a log
# Two pages of customer records; the second page holds a duplicate and a bad email.
API_PAGES = [
    [
        {"customer_id": 1, "name": "Ada", "email": "ada@example.com", "country": "GB",
         "purchase_amount": 640.0, "signup_date": "2024-01-05"},
        {"customer_id": 2, "name": None, "email": "bob@example.com", "country": "US",
         "purchase_amount": 120.5, "signup_date": "2024-02-11"},
    ],
    [
        {"customer_id": 3, "name": "Chen", "email": "chen@example.com", "country": "US",
         "purchase_amount": 20.0, "signup_date": "2024-03-20"},
        {"customer_id": 3, "name": "Chen", "email": "chen@example.com", "country": "US",
         "purchase_amount": 20.0, "signup_date": "2024-03-20"},
        {"customer_id": 4, "name": "Dee", "email": "dee.example.com", "country": "FR",
         "purchase_amount": 75.0, "signup_date": "2024-04-01"},
    ],
]


class Api(BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).requests.append(self.path)
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            self.send_response(401)
            self.end_headers()
            return
        page = 2 if self.path.endswith("page=2") else 1
        if not self.path.startswith("/customers"):
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps({"data": API_PAGES[page - 1],
                           "next": "/customers?page=2" if page == 1 else None}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass
