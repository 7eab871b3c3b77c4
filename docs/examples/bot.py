#!/usr/bin/env python3
"""A Chorus bot in the standard library only: it hears every message through
a webhook and answers `!roll` (and `!help`) in the room through the server
API. Run it next to a node started with a webhooks file that points at it:

    CHORUS_API_KEY=chorus_... CHORUS_URL=http://127.0.0.1:8080 \
    WEBHOOK_SECRET=whsec_... BOT_LISTEN=127.0.0.1:9000 python3 bot.py
"""
import base64, hashlib, hmac, json, os, random, urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

API, KEY = os.environ["CHORUS_URL"], os.environ["CHORUS_API_KEY"]
SECRET = base64.b64decode(os.environ["WEBHOOK_SECRET"].removeprefix("whsec_"))
HOST, PORT = os.environ.get("BOT_LISTEN", "127.0.0.1:9000").rsplit(":", 1)
ME = {"id": "bot:dice", "name": "Dice", "kind": "bot"}


def signed(headers, body):
    """The Standard Webhooks check: HMAC-SHA256 of id.timestamp.body."""
    text = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    mac = base64.b64encode(hmac.new(SECRET, text, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(f"v1,{mac}", s) for s in headers["webhook-signature"].split())


def post(room, body, reply_to):
    request = urllib.request.Request(
        f"{API}/api/v1/rooms/{room}/messages", method="POST",
        data=json.dumps({"from": ME, "body": body, "client_msg_id": f"re-{reply_to}"}).encode(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        if not signed(self.headers, body):
            self.send_response(401), self.end_headers()
            return
        event = json.loads(body)
        message = event["data"].get("message", {})
        text = message.get("body", "")
        if event["type"] == "message.created" and message["from"].get("kind") != "bot":
            if text.startswith("!roll"):
                post(message["room"], f"🎲 {message['from']['id']} rolled {random.randint(1, 6)}", message["id"])
            elif text.startswith("!help"):
                post(message["room"], "say !roll to roll a die", message["id"])
        # Answer 2xx only once handled: a failure above is retried by Chorus,
        # and the client_msg_id makes the retried answer post once.
        self.send_response(204), self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    HTTPServer((HOST, int(PORT)), Hook).serve_forever()
