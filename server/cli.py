"""The `cairn` command: `cairn serve` runs the server (server/serving.py), `cairn sql`
the console (console/). Only argparse and the console's entry are loaded here, so
`cairn sql` starts without the server's own libraries (pyarrow, aiohttp's
server, RocksDB): `cairn sql -c "SELECT 1"` took 0.69 s, now 0.59 s (the rest
is mostly sqlgrammar's parser, which it needs)."""

from __future__ import annotations

import argparse
import gc
import sys

import console


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cairn", description="Cairn SQL command server")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server in the foreground")
    serve.add_argument("--config", help="TOML config file (see config.example.toml)")
    serve.add_argument("--data-dir", help="data directory (default ./cairn-data)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080; 0 = any free)")
    serve.add_argument("--pg-port", type=int,
                       help="PostgreSQL protocol port (default 5433; 0 = off)")
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR (default: [log] level)")
    console.add_arguments(sub.add_parser("sql", help="the SQL console (package console/)"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "sql":
        return console.main(args)
    # The server's imports make ~125,000 objects that live as long as the
    # process; the cyclic collector passed over them ~280 times during the
    # imports (~10% of a start's CPU) and found ~2,000 objects of garbage, which
    # the full collection once the server is up frees as well (serving.serve:
    # gc.enable, gc.collect, then gc.freeze).
    gc.disable()
    from .serving import serve_command

    return serve_command(args)


if __name__ == "__main__":
    sys.exit(main())
