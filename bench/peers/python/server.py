"""python-socketio peer for bench/ on uvicorn (ASGI).

On connection join room `all`; `echo` -> `echo` with the same arguments; `trigger {k, b}` ->
broadcast K messages `tick {ts, i, b}` to room `all`. PORT (default 0) on 127.0.0.1.
Prints `listening on <addr>` just before uvicorn binds (run.sh waits for the port itself).
"""
import asyncio
import inspect
import os
import time

import socketio
import uvicorn

sio = socketio.AsyncServer(
    async_mode="asgi",
    cors_allowed_origins="*",
    ping_interval=25,
    ping_timeout=20,
    logger=False,
    engineio_logger=False,
)
app = socketio.ASGIApp(sio)


async def _maybe(r):
    if inspect.isawaitable(r):
        await r


@sio.event
async def connect(sid, environ, auth=None):
    await _maybe(sio.enter_room(sid, "all"))


@sio.event
async def echo(sid, *args):
    await sio.emit("echo", args[0] if len(args) == 1 else list(args), to=sid)


@sio.event
async def trigger(sid, arg=None):
    arg = arg or {}
    k = int(arg.get("k", 1))
    b = arg.get("b")
    for i in range(k):
        await sio.emit("tick", {"ts": time.time() * 1000.0, "i": i, "b": b}, room="all")


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "0"))
    print(f"listening on 127.0.0.1:{port}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", backlog=4096,
                timeout_keep_alive=30)
