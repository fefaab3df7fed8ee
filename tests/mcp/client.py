"""Drive valor's MCP server with the official Python SDK (`mcp` on PyPI).

usage: client.py stdio VALOR_BIN CHAT_ID
       client.py http URL TOKEN CHAT_ID

Lists the tools, calls `search_history` in CHAT_ID, then with bad input and
with an unknown chat, and prints one JSON object with what came back.
"""

import asyncio
import json
import os
import sys

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client


def text_of(result):
    return "".join(getattr(block, "text", "") for block in result.content)


async def scenario(client, chat_id):
    tools = await client.list_tools()
    listed = {
        tool.name: sorted(tool.input_schema.get("required", [])) for tool in tools.tools
    }
    ok = await client.call_tool("search_history", {"chat_id": chat_id, "query": "lighthouse"})
    bad = await client.call_tool("search_history", {"chat_id": chat_id, "wrong": 1})
    unknown = await client.call_tool("search_history", {"chat_id": "no-such-chat", "query": "x"})
    missing = await client.call_tool("search_history", {"query": "x"})
    report = {"tools": listed}
    for name, result in [("ok", ok), ("bad_input", bad), ("unknown_chat", unknown), ("no_chat", missing)]:
        report[name] = {"is_error": bool(result.is_error), "text": text_of(result)}
    return report


async def main():
    mode = sys.argv[1]
    if mode == "stdio":
        server = StdioServerParameters(command=sys.argv[2], args=["mcp"], env=dict(os.environ))
        chat_id = sys.argv[3]
        async with Client(server) as client:
            report = await scenario(client, chat_id)
    else:
        url, token, chat_id = sys.argv[2], sys.argv[3], sys.argv[4]
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
        async with http, Client(streamable_http_client(url, http_client=http)) as client:
            report = await scenario(client, chat_id)
    print(json.dumps(report))


asyncio.run(main())
