"""Models from outside this repository: other packages' entry points and local files.

* **Plugins**: a package that declares entry points in the group ``fus2bench.models`` (each entry
  a module whose import registers models with :func:`models.register_model`) is imported the first
  time the registry is asked for a model (``create_model``, ``get_model_config``, ``list_models``),
  so ``bench.list``, ``bench.run`` and ``bench.suite`` find its models with no change here. A
  plugin that fails to import, or registers a name twice, is reported in one line naming its
  package; whatever it registered is taken back, and every other model stays available.
* **Local files and modules**: ``--model path/to/file.py:name`` or ``--model pkg.module:name``
  (:func:`resolve_model`) imports the file or module, which registers ``name`` the same way; a
  file or module that does not register ``name`` itself is refused, naming what it registers,
  even when ``name`` is a built-in model (which it would otherwise silently train).
* **Names are never replaced**: a plugin, file or module that registers a name already
  registered (a built-in model's, or another plugin's) fails to load, and the message says whose
  name it is; the registered model stays as it was.

Every model defined outside ``models/`` has a :class:`ModelOrigin`: where it came from and the
SHA-256 of the source file of its factory, which a run records and hashes (the training-code
version covers ``models/`` only). See docs/protocol.md, "Models from other packages".
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import logging
import re
import sys
from dataclasses import asdict, dataclass
from importlib.metadata import entry_points
from pathlib import Path

from models.entries import registered_factories, unregister
from models.errors import UserError

log = logging.getLogger(__name__)

GROUP = "fus2bench.models"
MODELS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ModelOrigin:
    """Where a model not defined in ``models/`` came from."""

    kind: str  # "plugin" (entry point of an installed package), "file" or "module" (--model X:name)
    where: str  # "<package> <version> (<entry point>)", the file as given, or the module name
    source: str  # the file that defines the model's factory
    sha256: str  # of that file: part of the run's hash

    def describe(self) -> str:
        return {"plugin": f"plugin {self.where}", "file": f"file {self.where}",
                "module": f"module {self.where}"}[self.kind]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin entry point that could not be imported; its package's models are left out."""

    package: str
    entry_point: str
    error: str

    def message(self) -> str:
        return (f"model plugin package {self.package!r} (entry point {self.entry_point}) failed "
                f"to load: {self.error}; its models are left out, the others are unaffected — fix "
                f"it or pip uninstall {self.package}")


_ORIGINS: dict[str, ModelOrigin] = {}
_BROKEN: list[BrokenPlugin] = []
_LOADED_FILES: dict[Path, str] = {}  # resolved file → the module name it was imported as
_REGISTERED_BY: dict[str, list[str]] = {}  # module imported for --model X:name → what it registered
_IMPORTED: set[str] = set()  # top modules imported here (forgotten by forget_outside_models)
_state = {"loaded": False}


def one_line(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def import_failure(exc: BaseException) -> str:
    """Why importing a plugin, file or module failed, as one line; a model name that is already
    registered (a built-in one, or another plugin's) is said as such: a model from elsewhere never
    replaces a registered one, silently or not (docs/protocol.md, "Models from other packages")."""
    taken = re.fullmatch(r"model '(.+)' is registered twice", str(exc)) \
        if isinstance(exc, ValueError) else None
    if taken is None:
        return one_line(exc)
    name = taken.group(1)
    origin = _ORIGINS.get(name)
    owner = f"the model from {origin.describe()}" if origin else "a built-in model (models/)"
    return (f"it registers {name!r}, a name {owner} already has; a model is never replaced — "
            "give yours another name")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _registered_since(before: set[str]) -> list[str]:
    return sorted(set(registered_factories()) - before)


def _take_back(names: list[str]) -> None:
    for name in names:
        unregister(name)
        _ORIGINS.pop(name, None)


def _record(names: list[str], kind: str, where: str) -> None:
    factories = registered_factories()
    for name in names:
        source = Path(inspect.getsourcefile(factories[name]) or "")
        sha = _sha256(source) if source.is_file() else ""
        _ORIGINS[name] = ModelOrigin(kind, where, str(source), sha)


def load_plugins() -> None:
    """Import every ``fus2bench.models`` entry point once per process (the registry calls this
    before it answers). A failing one is recorded, said on stderr in one line, and rolled back."""
    if _state["loaded"]:
        return
    _state["loaded"] = True
    seen: set[tuple[str, str]] = set()
    for ep in sorted(entry_points(group=GROUP), key=lambda e: (e.value, e.name)):
        package = ep.dist.name if ep.dist is not None else ep.value.split(".")[0]
        version = ep.dist.version if ep.dist is not None else "?"
        if (package, ep.value) in seen:  # the same distribution found twice on sys.path
            continue
        seen.add((package, ep.value))
        before = set(registered_factories())
        if ep.module not in sys.modules:  # forgotten again by forget_outside_models
            _IMPORTED.add(ep.module)
        try:
            ep.load()
        except Exception as exc:  # noqa: BLE001 - any failure of foreign code is reported
            _take_back(_registered_since(before))
            broken = BrokenPlugin(package, f"{ep.name} = {ep.value}", import_failure(exc))
            _BROKEN.append(broken)
            log.warning(f"warning: {broken.message()}")
            continue
        _record(_registered_since(before), "plugin", f"{package} {version} ({ep.name} = {ep.value})")


def broken_plugins() -> list[BrokenPlugin]:
    """The plugins that failed to load in this process (after :func:`load_plugins`)."""
    load_plugins()
    return list(_BROKEN)


def model_origin(name: str) -> ModelOrigin | None:
    """Where ``name`` came from; ``None`` for the models defined in ``models/``."""
    load_plugins()
    return _ORIGINS.get(name)


def _import_file(path: Path, spec_text: str) -> None:
    resolved = path.resolve()
    if resolved in _LOADED_FILES:
        return
    module_name = f"fus2bench_local_{hashlib.sha256(str(resolved).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise UserError(f"`model` {spec_text}: {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    before = set(registered_factories())
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's file: its failure is one line
        _take_back(_registered_since(before))
        del sys.modules[module_name]
        raise UserError(f"`model` {spec_text}: importing {path} failed ({import_failure(exc)}); "
                        "fix the file") from None
    _LOADED_FILES[resolved] = module_name
    _REGISTERED_BY[module_name] = _registered_since(before)
    _record(_REGISTERED_BY[module_name], "file", str(path))


def _import_module(module: str, spec_text: str) -> None:
    if module in sys.modules:
        return
    before = set(registered_factories())
    _IMPORTED.add(module)
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001
        _take_back(_registered_since(before))
        raise UserError(f"`model` {spec_text}: importing module {module!r} failed "
                        f"({import_failure(exc)}); give an importable module or a file path"
                        ) from None
    _REGISTERED_BY[module] = _registered_since(before)
    _record(_REGISTERED_BY[module], "module", module)


def registered_by(module: str) -> list[str]:
    """The models the module ``module`` registers: those registered while it was imported here,
    and those whose factory it (or a module inside it) defines (a module imported before, e.g. a
    plugin's or a built-in one)."""
    inside = [n for n, fn in registered_factories().items()
              if getattr(fn, "__module__", "") == module or
              getattr(fn, "__module__", "").startswith(f"{module}.")]
    return sorted(set(_REGISTERED_BY.get(module, [])) | set(inside))


def resolve_model(spec: str) -> str:
    """A ``--model`` value as a registered name: ``name``, ``path/to/file.py:name`` or
    ``pkg.module:name`` (the file or module is imported; it must register ``name``)."""
    if ":" not in spec:
        return spec
    where, name = spec.rsplit(":", 1)
    if not where or not name:
        raise UserError(f"`model` {spec}: give NAME, path/to/file.py:NAME or package.module:NAME")
    load_plugins()
    path = Path(where).expanduser()
    if where.endswith(".py") or "/" in where or "\\" in where:
        if not path.is_file():
            raise UserError(f"`model` {spec}: {where} does not exist (a Python file that "
                            "registers the model with @register_model)")
        _import_file(path, spec)
        module = _LOADED_FILES[path.resolve()]
    else:
        _import_module(where, spec)
        module = where
    made = registered_by(module)
    if name not in made:  # never another model of that name (a built-in one) in its place
        origin = _ORIGINS.get(name)
        hint = (f"decorate its factory with @register_model(ModelConfig(name={name!r}, ...))"
                if name not in registered_factories() else
                f"{name} is the model from {origin.describe()}" if origin else
                f"{name} is a built-in model: `model` {name} trains it; a model of yours needs a "
                "name of its own")
        raise UserError(f"`model` {spec}: {where} registers {', '.join(made) or 'no model'}; "
                        f"not {name} ({hint})")
    return name


def forget_outside_models() -> None:
    """Unregister every model from a plugin, file or module and forget the plugin scan (tests
    call this when they uninstall a plugin, so the next question scans again)."""
    _take_back(list(_ORIGINS))
    _BROKEN.clear()
    _REGISTERED_BY.clear()
    _IMPORTED.update(_LOADED_FILES.values())
    _LOADED_FILES.clear()
    for loaded in list(sys.modules):
        if any(loaded == m or loaded.startswith(f"{m}.") for m in _IMPORTED):
            del sys.modules[loaded]
    _IMPORTED.clear()
    _state["loaded"] = False
