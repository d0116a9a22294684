"""The non-editable install ships every package and template folder: a new
module folder missing from setup.cfg passes an editable checkout's tests and
breaks every real install (it did once: kameng.orders)."""
import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def listed_packages() -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg["options"]["packages"].splitlines()
    return {line.strip() for line in lines if line.strip() and not line.strip().startswith("#")}


def test_every_code_package_is_listed():
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "kameng").rglob("__init__.py")}
    assert found - listed_packages() == set()


def test_every_template_folder_is_listed():
    found = {"kameng.themes." + ".".join(p.parent.relative_to(ROOT / "themes").parts)
             for p in (ROOT / "themes").rglob("*.pt")}
    assert found - listed_packages() == set()
