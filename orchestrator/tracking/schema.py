"""A new SQLite tracking store starts as a copy of an empty one that MLflow built once.

MLflow builds a new SQLite store by creating its first tables and then running every Alembic
migration of its schema, one after another (~1.5 s of CPU with Alembic's imports, against ~0.1 s
to open the same store once it exists): on a search's first run in a folder, and in every test
or benchmark that starts from an empty store. What it builds is the same empty schema each time
for one MLflow version, so the first new store on a machine is built by MLflow itself into a
cache (:func:`template_path`, keyed by MLflow's version and its migration files) and each later
new store starts as a copy of it. MLflow then opens the copy as an existing store: it checks
the schema's revision as for any store and creates its ``Default`` experiment itself (whose
artifact location depends on the directory it runs in, which is why the template has none).

``AUTOML_STORE_TEMPLATE=0`` leaves every new store to MLflow; ``AUTOML_CACHE_DIR`` moves the
cache (default ``$XDG_CACHE_HOME/automl`` or ``~/.cache/automl``). Anything that fails here
leaves the store to MLflow, which builds it as it always does.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

TEMPLATE_ENV = "AUTOML_STORE_TEMPLATE"
CACHE_ENV = "AUTOML_CACHE_DIR"
SQLITE_PREFIX = "sqlite:///"

_log = logging.getLogger(__name__)


def cache_dir() -> Path:
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "automl"


def schema_key() -> str:
    """MLflow's version and a digest of its migration files' names: a new migration, or another
    MLflow, is another template."""
    import mlflow
    import mlflow.store.db_migrations as migrations

    versions = Path(migrations.__file__).parent / "versions"
    names = sorted(p.name for p in versions.glob("*.py"))
    digest = hashlib.sha1("\n".join(names).encode(), usedforsecurity=False).hexdigest()[:12]
    return f"{mlflow.__version__}-{digest}"


def template_path() -> Path:
    return cache_dir() / f"mlflow-store-{schema_key()}.db"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (absolute, as resolve_tracking_uri makes it);
    None for any other store or an in-memory database."""
    if not uri.startswith(SQLITE_PREFIX):
        return None
    path = uri.removeprefix(SQLITE_PREFIX).split("?", 1)[0]
    if not path or path == ":memory:" or not path.startswith("/"):
        return None
    return Path(path)


def build_template(path: Path) -> None:
    """MLflow's own empty schema (tables, then every migration), checked at its head revision,
    written to ``path`` whole (built beside it, then renamed into place)."""
    import sqlalchemy
    from mlflow.store.db import utils

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        engine = sqlalchemy.create_engine(f"{SQLITE_PREFIX}{tmp}")
        try:
            utils._initialize_tables(engine)
            utils._verify_schema(engine)  # raises unless at MLflow's head revision
            if not utils._all_tables_exist(engine):
                raise RuntimeError("MLflow's schema is incomplete")
        finally:
            engine.dispose()
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def seed_sqlite_store(uri: str) -> bool:
    """Create the SQLite store of ``uri`` as a copy of the template when it does not exist yet;
    True when it did. An existing file, another kind of store, a folder that does not exist or
    any failure is left to MLflow (False). The copy appears whole or not at all (a hard link of
    a finished copy), so a process that opens the store at the same time sees MLflow's store
    or this one, never half of one."""
    if os.environ.get(TEMPLATE_ENV, "1") == "0":
        return False
    path = sqlite_path(uri)
    if path is None or path.exists() or not path.parent.is_dir():
        return False
    try:
        template = template_path()
        if not template.exists():
            build_template(template)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            shutil.copyfile(template, tmp)
            os.link(tmp, path)  # fails if the store appeared meanwhile: that one stays
        finally:
            os.unlink(tmp)
    except FileExistsError:
        return False
    except Exception as err:  # MLflow builds the store as it would have
        _log.debug("no store template for %s: %s", uri, err)
        return False
    return True
