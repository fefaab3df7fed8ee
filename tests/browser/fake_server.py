#!/usr/bin/env python3
"""A throwaway stand-in for valor's HTTP server, for front-end work only.

It serves the static files from web/ at the paths the Rust binary uses and
implements the web chat's slice of the API contract with canned data:

  GET  /                                  web/index.html
  GET  /assets/app.js, /assets/app.css    web/app.js, web/app.css
  GET  /docs                              web/docs.html
  GET  /openapi.json                      a small hand-written OpenAPI document
  GET  /health                            {"status": "ok"}
  GET  /api/conversations                 the conversation list
  GET  /api/conversations/{id}/messages   one conversation's messages
  POST /api/messages                      SSE (Accept: text/event-stream) or JSON

Usage:
  python3 tests/browser/fake_server.py [--port 8765] [--token SECRET] [--linger SECONDS]

With --token, every /api/ request must carry "Authorization: Bearer SECRET"
(401 with a JSON error otherwise), which exercises the page's token form.
With --linger, the SSE connection stays open that long after `done` (the page
must treat `done` as the end of the turn, not the end of the stream).
A message containing the word "fail" makes the fake answer with an `error`
event (followed by `done`), to exercise error bubbles.
It is standard library only and keeps everything in memory.
"""

import argparse
import json
import os
import re
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WEB = os.path.join(ROOT, "web")

STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/assets/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/assets/app.css": ("app.css", "text/css; charset=utf-8"),
    "/docs": ("docs.html", "text/html; charset=utf-8"),
}

LOCK = threading.Lock()
CONVERSATIONS = {}  # id -> dict(conversation fields) ; messages kept in "messages"
NEXT_MESSAGE_ID = [1]


def now_iso(offset_s=0.0):
    t = datetime.fromtimestamp(time.time() + offset_s, tz=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def add_message(conv, role, text, content):
    msg = {
        "id": NEXT_MESSAGE_ID[0],
        "role": role,
        "text": text,
        "content": content,
        "created_at": now_iso(),
    }
    NEXT_MESSAGE_ID[0] += 1
    conv["messages"].append(msg)
    conv["updated_at"] = msg["created_at"]
    return msg


def new_conversation(title, age_s=0.0):
    cid = "c_" + uuid.uuid4().hex[:12]
    conv = {
        "id": cid,
        "title": title,
        "channel": "web",
        "created_at": now_iso(-age_s),
        "updated_at": now_iso(-age_s),
        "messages": [],
    }
    CONVERSATIONS[cid] = conv
    return conv


def seed():
    c = new_conversation("Release checklist", age_s=86400)
    add_message(c, "user", "Can you draft the release checklist for v0.3?", [
        {"type": "text", "text": "Can you draft the release checklist for v0.3?"}])
    add_message(c, "assistant", "", [
        {"type": "tool_use", "id": "toolu_seed1", "name": "search_history",
         "input": {"query": "release checklist"}}])
    add_message(c, "tool", "", [
        {"type": "tool_result", "tool_use_id": "toolu_seed1",
         "content": "2 hits: 'tag after CI is green', 'update CHANGELOG'", "is_error": False}])
    reply = ("Here is a short checklist:\n\n1. CI green on main\n2. Update CHANGELOG\n"
             "3. Tag and push\n\n```\ngit tag v0.3.0 && git push --tags\n```\n\n"
             "Tell me if you want it as a Notion page.")
    add_message(c, "assistant", reply, [{"type": "text", "text": reply}])
    for m in c["messages"]:
        m["created_at"] = c["created_at"]
    c["updated_at"] = c["created_at"]

    c = new_conversation("Flaky test in storage", age_s=3600)
    add_message(c, "user", "Why is storage::tests::wal flaky?", [
        {"type": "text", "text": "Why is storage::tests::wal flaky?"}])
    add_message(c, "assistant",
                "It races the checkpoint thread. Use a fresh temp dir per test and wait for the "
                "checkpoint before asserting.", [])
    for m in c["messages"]:
        m["created_at"] = c["created_at"]
    c["updated_at"] = c["created_at"]


def summary(conv):
    out = {k: v for k, v in conv.items() if k != "messages"}
    out["message_count"] = len(conv["messages"])
    return out


def find_conversation(ref):
    """`ref` is an id or a new conversation's name (the contract's rule)."""
    with LOCK:
        if ref in CONVERSATIONS:
            return CONVERSATIONS[ref]
        return new_conversation((ref or "New conversation").strip()[:80] or "New conversation")


def canned_reply(text):
    if "launch" in text.lower():
        return ("We decided to move the launch date to **March 3**, right after the security "
                "review closes.\n\nThe reasons noted at the time:\n\n"
                "- the payment provider needs two more weeks\n- docs were not ready\n\n"
                "```\nlaunch: 2027-03-03\nfreeze: 2027-02-24\n```\n\n"
                "Want me to remind the team a week before?")
    return f"You said: {text}\n\nThis is the fake server; the real valor would answer properly."


OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "valor (fake)", "version": "0.0.0",
             "description": "Hand-written stand-in for the real document."},
    "paths": {
        "/api/messages": {"post": {
            "summary": "Send a message (JSON or SSE)",
            "requestBody": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/SendMessage"}}}},
            "responses": {"200": {"description": "The reply", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/TurnReply"}},
                "text/event-stream": {"schema": {"type": "string"}}}},
                "401": {"description": "Missing or bad token", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/ApiError"}}}}}}},
        "/api/conversations": {"get": {
            "summary": "List conversations, newest first",
            "responses": {"200": {"description": "OK", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ConversationList"}}}}}}},
        "/api/conversations/{id}/messages": {"get": {
            "summary": "Messages of one conversation",
            "parameters": [{"name": "id", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": {"description": "OK", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/MessageList"}}}},
                "404": {"description": "Unknown conversation"}}}},
        "/health": {"get": {"summary": "Liveness", "responses": {"200": {"description": "OK"}}}},
    },
    "components": {"schemas": {
        "SendMessage": {"type": "object", "required": ["conversation", "text"], "properties": {
            "conversation": {"type": "string"}, "text": {"type": "string"}}},
        "TurnReply": {"type": "object", "properties": {
            "conversation": {"type": "string"}, "reply": {"type": "string"},
            "tool_calls": {"type": "array", "items": {"$ref": "#/components/schemas/ToolCall"}}}},
        "ToolCall": {"type": "object", "properties": {
            "id": {"type": "string"}, "name": {"type": "string"}, "input": {},
            "output": {"type": "string"}, "is_error": {"type": "boolean"}}},
        "ConversationList": {"type": "object", "properties": {"conversations": {
            "type": "array", "items": {"$ref": "#/components/schemas/Conversation"}}}},
        "Conversation": {"type": "object", "properties": {
            "id": {"type": "string"}, "title": {"type": "string"}, "channel": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "message_count": {"type": "integer"}}},
        "MessageList": {"type": "object", "properties": {
            "conversation": {"type": "string"},
            "messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}}}},
        "Message": {"type": "object", "properties": {
            "id": {"type": "integer"}, "role": {"type": "string",
                                                "enum": ["user", "assistant", "tool", "system"]},
            "text": {"type": "string"}, "content": {"type": "array", "items": {}},
            "created_at": {"type": "string", "format": "date-time"}}},
        "ApiError": {"type": "object", "properties": {"error": {"type": "object", "properties": {
            "code": {"type": "string"}, "message": {"type": "string"}}}}},
    }},
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one response per connection: simplest for SSE
    token = None
    linger = 0.0

    def log_message(self, fmt, *args):
        if os.environ.get("FAKE_QUIET") != "1":
            super().log_message(fmt, *args)

    # -- helpers --------------------------------------------------------------
    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_error_json(self, status, code, message):
        self.send_json(status, {"error": {"code": code, "message": message}})

    def authorized(self):
        if not self.token or not self.path.startswith("/api/"):
            return True
        if self.headers.get("Authorization") == f"Bearer {self.token}":
            return True
        self.send_error_json(401, "unauthorized", "A valid bearer token is required.")
        return False

    # -- routes ---------------------------------------------------------------
    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path in STATIC:
            name, ctype = STATIC[path]
            with open(os.path.join(WEB, name), "rb") as f:
                body = f.read()
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
            return
        if path == "/openapi.json":
            return self.send_json(200, OPENAPI)
        if path == "/health":
            return self.send_json(200, {"status": "ok"})
        if not self.authorized():
            return
        if path == "/api/conversations":
            with LOCK:
                convs = sorted((summary(c) for c in CONVERSATIONS.values()),
                               key=lambda c: c["updated_at"], reverse=True)
            return self.send_json(200, {"conversations": convs})
        m = re.fullmatch(r"/api/conversations/([^/]+)/messages", path)
        if m:
            with LOCK:
                conv = CONVERSATIONS.get(m.group(1))
                msgs = list(conv["messages"]) if conv else None
            if conv is None:
                return self.send_error_json(404, "not_found", "No such conversation.")
            return self.send_json(200, {"conversation": conv["id"], "messages": msgs})
        self.send_error_json(404, "not_found", f"No route for GET {path}")

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        if not self.authorized():
            return
        if path != "/api/messages":
            return self.send_error_json(404, "not_found", f"No route for POST {path}")
        try:
            length = int(self.headers.get("Content-Length") or 0)
            req = json.loads(self.rfile.read(length) or b"{}")
            ref, text = req["conversation"], req["text"]
            if not isinstance(ref, str) or not isinstance(text, str) or not text.strip():
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return self.send_error_json(400, "bad_request",
                                        'Expected {"conversation": "...", "text": "..."}')

        conv = find_conversation(ref)
        with LOCK:
            add_message(conv, "user", text, [{"type": "text", "text": text}])
        reply = canned_reply(text)
        tool = {"id": "toolu_" + uuid.uuid4().hex[:8], "name": "search_history",
                "input": {"query": text[:60]},
                "output": "3 messages found:\n- 2026-11-12 \"launch moves to March 3\"\n"
                          "- 2026-11-12 \"security review ends Feb 28\"\n- 2026-11-13 \"ok\"",
                "is_error": False}
        fail = "fail" in text.lower()

        def record():
            with LOCK:
                add_message(conv, "assistant", "", [
                    {"type": "tool_use", "id": tool["id"], "name": tool["name"],
                     "input": tool["input"]}])
                add_message(conv, "tool", "", [
                    {"type": "tool_result", "tool_use_id": tool["id"],
                     "content": tool["output"], "is_error": False}])
                if not fail:
                    add_message(conv, "assistant", reply, [{"type": "text", "text": reply}])

        if "text/event-stream" not in (self.headers.get("Accept") or ""):
            record()
            return self.send_json(200, {"conversation": conv["id"],
                                        "reply": "" if fail else reply, "tool_calls": [tool]})

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

        def event(name, data, pause=0.0):
            self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()
            if pause:
                time.sleep(pause)

        try:
            event("turn_started", {"conversation": conv["id"], "turn_id": "t_" + uuid.uuid4().hex[:8],
                                   "intent": "question", "model": "claude-sonnet-4-5"}, 0.3)
            event("text_delta", {"text": "Let me check our history. "}, 0.2)
            event("tool_started", {k: tool[k] for k in ("id", "name", "input")}, 0.8)
            event("tool_finished", {k: tool[k] for k in ("id", "name", "output", "is_error")}, 0.2)
            if fail:
                event("error", {"message": "The model provider is unavailable (fake failure)."})
                final = ""
            else:
                words = re.findall(r"\S+\s*|\s+", reply)
                for i in range(0, len(words), 3):
                    event("text_delta", {"text": "".join(words[i:i + 3])}, 0.04)
                # The final reply omits the preamble, like a real turn whose last
                # model message is the answer: the page must replace the text.
                final = reply
            record()
            event("done", {"conversation": conv["id"], "reply": final, "tool_calls": [tool]})
            if self.linger:
                time.sleep(self.linger)
        except (BrokenPipeError, ConnectionResetError):
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--token", default=None, help="require this bearer token on /api/")
    ap.add_argument("--linger", type=float, default=0.0,
                    help="keep SSE streams open this many seconds after done")
    args = ap.parse_args()
    Handler.token = args.token
    Handler.linger = args.linger
    seed()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"fake valor on http://{args.host}:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
