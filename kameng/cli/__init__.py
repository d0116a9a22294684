"""The ``kameng`` command line."""
from __future__ import annotations

import argparse
import os
import sys

from kameng.cli import backup, commands

EXPECTED_ERRORS = commands.EXPECTED_ERRORS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kameng", description="kameng: a self-hosted shop for virtual goods.")
    p.add_argument("-c", "--config", default=None,
                   help="path of kameng.ini (default: $KAMENG_CONFIG, else ./kameng.ini)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("init", help="create a new shop in a data directory")
    s.add_argument("--data", required=True, help="data directory (created; holds kameng.ini, the key file, the database)")
    s.add_argument("--db", help="database URL (default: SQLite in the data directory)")
    s.add_argument("--demo", action="store_true", help="enable the sandbox gateway and load a demo catalog")
    s.add_argument("--admin-email", default="admin@kameng.local", help="the first admin's email")
    s.add_argument("--admin-password", help="the first admin's password (default: generated and printed)")
    s.add_argument("--base-url", default="http://127.0.0.1:6543", help="public URL of the shop")
    s.add_argument("--listen", default="127.0.0.1:6543", help="HOST:PORT the server listens on")
    s.set_defaults(func=commands.init)

    s = sub.add_parser("serve", help="run the web server (and a worker thread)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--no-worker", action="store_true", help="do not run background jobs in this process")
    s.add_argument("--threads", type=int, default=None, help="request threads (default from the config, else 8)")
    s.set_defaults(func=commands.serve)

    s = sub.add_parser("worker", help="run background jobs only")
    s.add_argument("--threads", type=int, default=1, help="worker threads")
    s.add_argument("--once", action="store_true", help="run the jobs that are due, then exit")
    s.set_defaults(func=commands.worker)

    s = sub.add_parser("migrate", help="upgrade the database (core and every installed plugin)")
    s.set_defaults(func=commands.migrate)

    s = sub.add_parser("plugins", help="list, enable, disable and configure plugins")
    psub = s.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = psub.add_parser("list", help="installed plugins and their state")
    a.set_defaults(func=commands.plugins_list)
    for name, fn in (("enable", commands.plugins_enable), ("disable", commands.plugins_disable)):
        a = psub.add_parser(name, help=f"{name} a plugin (takes effect at once in running servers)")
        a.add_argument("name")
        a.set_defaults(func=fn)
    a = psub.add_parser("configure", help="set plugin settings: key=value (key=@PATH reads a file)")
    a.add_argument("name")
    a.add_argument("pairs", nargs="+", metavar="key=value")
    a.set_defaults(func=commands.plugins_configure)

    s = sub.add_parser("keys", help="card-key stock: import, rotate the encryption key")
    ksub = s.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = ksub.add_parser("import", help="import card keys for a SKU from a text or CSV file")
    a.add_argument("--sku", required=True, help="the SKU's code")
    a.add_argument("--separator", help="between card number and secret (e.g. ',' or ' '); default: one secret a line")
    a.add_argument("file", help="the file, or - for standard input")
    a.set_defaults(func=commands.keys_import)
    a = ksub.add_parser("rotate", help="encrypt every secret under a new key (online, resumable)")
    a.add_argument("--resume", action="store_true", help="finish an interrupted rotation without adding a key")
    a.add_argument("--drop-old", action="store_true", help="afterwards, remove keys no secret uses any more")
    a.set_defaults(func=commands.keys_rotate)

    s = sub.add_parser("admin", help="admin accounts and API tokens")
    asub = s.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = asub.add_parser("create", help="create an admin account")
    a.add_argument("--email", required=True)
    a.add_argument("--password", help="default: generated and printed")
    a.set_defaults(func=commands.admin_create)
    a = asub.add_parser("reset-password", help="set a new password (and unlock the account)")
    a.add_argument("--email", required=True)
    a.add_argument("--password", help="default: generated and printed")
    a.set_defaults(func=commands.admin_reset_password)
    a = asub.add_parser("token", help="API tokens")
    tsub = a.add_subparsers(dest="token_action", metavar="ACTION", required=True)
    t = tsub.add_parser("create", help="create an API token for the admin API (printed once)")
    t.add_argument("name")
    t.add_argument("--email", help="admin account the token acts as (default: the first admin)")
    t.set_defaults(func=commands.admin_token_create)

    backup.add_parsers(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config is None:
        args.config = os.environ.get("KAMENG_CONFIG") or "kameng.ini"
    try:
        return args.func(args) or 0
    except EXPECTED_ERRORS as exc:
        print(f"kameng: error: {commands.describe(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130

