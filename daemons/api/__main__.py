"""`python -m eve.daemons.api [--host H] [--port P] [--workers N] [--reuse-port]` = `eve api serve`."""

import argparse
import os

from eve.daemons.api.server import serve

parser = argparse.ArgumentParser(prog="python -m eve.daemons.api", description="Serve the eve HTTP API.")
parser.add_argument("--host", default=os.environ.get("EVE_API_HOST", "127.0.0.1"))
parser.add_argument("--port", type=int, default=int(os.environ.get("EVE_API_PORT", "3000")))
parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (uvicorn supervises them)")
parser.add_argument("--reuse-port", action="store_true",
                    help="bind with SO_REUSEPORT so that several independent API processes share the port")
args = parser.parse_args()
serve(args.host, args.port, args.workers, reuse_port=args.reuse_port)
