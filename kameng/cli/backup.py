"""``kameng backup`` and ``kameng restore``."""
from __future__ import annotations

import getpass
import os
import sys

from kameng.backup import BackupError
from kameng.backup.crypt import BackupCryptoError, check_passphrase
from kameng.backup.job import read_passphrase_file
from kameng.cli.commands import CLIError, load_settings

PASSPHRASE_ENV = "KAMENG_BACKUP_PASSPHRASE"


def add_parsers(sub) -> None:
    s = sub.add_parser("backup", help="back up the database, key file, configuration, media and themes (online)")
    s.add_argument("path", nargs="?", metavar="PATH",
                   help="the file to write, or a folder for a new file in it "
                        "(default: a new file in kameng.backup.dir, else DATA/backups)")
    s.add_argument("--encrypt", action="store_true",
                   help=f"encrypt with a passphrase (asked for, unless --passphrase-file or ${PASSPHRASE_ENV})")
    s.add_argument("--passphrase-file", metavar="FILE", help="encrypt with the passphrase in FILE")
    s.add_argument("--without-key-file", action="store_true",
                   help="leave the key file out (a restore then needs --key-file)")
    s.set_defaults(func=backup)

    s = sub.add_parser("restore", help="restore a backup into a new, empty data directory")
    s.add_argument("path", metavar="PATH", help="the backup file")
    s.add_argument("--data", metavar="DIR", help="the data directory to create (it must be new or empty)")
    s.add_argument("--db", metavar="URL",
                   help="the database to restore into; PostgreSQL and MariaDB: an existing, empty database "
                        "(default for a SQLite backup: DIR/kameng.sqlite)")
    s.add_argument("--key-file", metavar="PATH", help="the shop's key file, for a backup made without it")
    s.add_argument("--passphrase-file", metavar="FILE", help="the passphrase of an encrypted backup")
    s.add_argument("--check", action="store_true", help="only read and check the backup; restore nothing")
    s.set_defaults(func=restore)


def _passphrase(args, ask: bool, confirm: bool) -> str | None:
    """From --passphrase-file, else $KAMENG_BACKUP_PASSPHRASE, else (``ask``) the terminal."""
    if args.passphrase_file:
        return read_passphrase_file(args.passphrase_file)
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    if not ask:
        return None
    if not sys.stdin.isatty():
        raise CLIError(f"no passphrase: give --passphrase-file FILE or set ${PASSPHRASE_ENV} "
                       "(there is no terminal to ask on)")
    first = getpass.getpass("backup passphrase: ")
    if confirm:
        check_passphrase(first)
        if getpass.getpass("the same again: ") != first:
            raise CLIError("the two passphrases differ")
    return first


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def backup(args) -> int:
    from kameng.backup.create import create_backup
    from kameng.config import prepare_settings

    settings = prepare_settings(load_settings(args.config))
    try:
        passphrase = _passphrase(args, ask=args.encrypt, confirm=True)
        result = create_backup(settings, args.path, config_path=os.path.abspath(args.config), passphrase=passphrase,
                               include_key_file=not args.without_key_file)
    except BackupError as exc:
        raise CLIError(str(exc)) from None
    parts = [f"database ({result.dialect})", "kameng.ini" if "kameng.ini" in result.members else None,
             "key file" if result.key_file else None,
             f"{result.media_files} media files" if result.media_files else None,
             f"{result.theme_files} theme files" if result.theme_files else None]
    print(f"backup written: {result.path} ({_size(result.size)}{', encrypted' if result.encrypted else ''})")
    print("  holds: " + ", ".join(p for p in parts if p))
    counts = result.counts
    print(f"  orders: {counts.get('orders', 0)}, card keys: {counts.get('card_keys', 0)}, "
          f"users: {counts.get('users', 0)}")
    if result.key_file and not result.encrypted:
        print("kameng: warning: this backup holds the key file unencrypted: whoever has the file can read every "
              "card key. It is readable by you only (mode 0600); use --encrypt, or --without-key-file and keep "
              "the key file apart, before you copy it off this server", file=sys.stderr)
    elif not result.key_file:
        print("  the key file is not in it: keep the key file safe; `kameng restore` needs it (--key-file)")
    return 0


def restore(args) -> int:
    from kameng.backup.restore import check_archive, needs_passphrase, restore_backup

    if not args.check and not args.data:
        raise CLIError("give the data directory to restore into: --data DIR")
    try:
        passphrase = None
        if needs_passphrase(args.path):
            passphrase = _passphrase(args, ask=True, confirm=False)
        if args.check:
            manifest = check_archive(args.path, passphrase)
            db = manifest["database"]
            print(f"backup OK: made {manifest.get('created_at')} by kameng {manifest.get('kameng_version')}, "
                  f"{db['dialect']} database, {len(manifest['members'])} files"
                  + ("" if manifest.get("key_file") else ", without the key file"))
            return 0
        result = restore_backup(args.path, args.data, db_url=args.db, key_file=args.key_file, passphrase=passphrase)
    except BackupCryptoError as exc:
        raise CLIError(f"{exc}; nothing was restored") from None
    except BackupError as exc:
        raise CLIError(str(exc)) from None
    counts = result.counts
    print(f"restored into {result.data_dir}")
    print(f"  config:    {result.config}")
    url = result.db_url
    print(f"  database:  {url.split('@')[-1] if '@' in url else url} ({result.dialect})")
    print(f"  orders: {counts.get('orders', 0)}, card keys: {counts.get('card_keys', 0)}, "
          f"users: {counts.get('users', 0)}, products: {counts.get('products', 0)}")
    print(f"  key file:  {os.path.join(result.data_dir, 'secret.key')}"
          + ("" if result.key_file_from == "backup" else f" (copied from {result.key_file_from})"))
    if result.media_files or result.theme_files:
        print(f"  files:     {result.media_files} media, {result.theme_files} theme")
    print("  checked:   row counts, migrations, and encrypted data decrypts with the key file")
    for note in result.notes:
        print(f"note: {note}")
    return 0
