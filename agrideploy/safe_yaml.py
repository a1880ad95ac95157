"""YAML from users' files, read as plain data: no tags, no aliases, bounded size.

yaml.safe_load already refuses python tags, but it expands aliases: a 1 kB "billion laughs"
data.yaml takes gigabytes. No data.yaml or model yaml needs an alias, so the loader refuses them.
`read_data_yaml` also checks the fields of a YOLO data.yaml before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from agrideploy import limits
from agrideploy.errors import AgrideployError


def _loader() -> type:
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(f"YAML aliases (*name) are not accepted (line {mark.line + 1})")
            return super().compose_node(parent, index)

    return NoAliasLoader


def load_yaml(path: Union[str, Path], what: str) -> Any:
    """The plain data of the yaml file at `path`; `what` names it in errors (e.g. '--data data.yaml')."""
    import yaml

    path = Path(path)
    try:
        size = path.stat().st_size
        limits.check("max_yaml_bytes", size, what)
        text = path.read_bytes().decode("utf-8")
        return yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass
    except OSError as exc:
        raise AgrideployError(f"{what}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise AgrideployError(f"{what}: not UTF-8 text") from None
    except (yaml.YAMLError, RecursionError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AgrideployError(f"{what}: not valid YAML ({first})") from None


def read_data_yaml(path: Union[str, Path], what: str) -> Dict[str, Any]:
    """A YOLO data.yaml with its fields checked: path (text), train/val/test (text or list of text), names, nc."""
    data = load_yaml(path, what)
    if not isinstance(data, dict):
        raise AgrideployError(f"{what}: not a YOLO data.yaml (expected a mapping)")
    if data.get("path") is not None and not isinstance(data["path"], str):
        raise AgrideployError(f"{what}: 'path' must be a folder name, got {data['path']!r}")
    for split in ("train", "val", "test"):
        value = data.get(split)
        if value is not None and not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
            raise AgrideployError(f"{what}: '{split}' must be a path or a list of paths, got {value!r}")
    nc = data.get("nc")
    if nc is not None and (not isinstance(nc, int) or isinstance(nc, bool) or nc < 1):
        raise AgrideployError(f"{what}: 'nc' must be a positive integer, got {nc!r}")
    names = data_names(data.get("names"), what)
    if nc is not None and names is not None and len(names) != nc:
        raise AgrideployError(f"{what}: 'nc' is {nc} but 'names' lists {len(names)} classes")
    return data


def data_names(value: Any, what: str) -> Optional[List[str]]:
    """`names` as a list: a list of text, or a mapping {0: name, 1: name, ...} with consecutive indices."""
    if value is None:
        return None
    if isinstance(value, dict):
        keys = list(value)
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in keys) or sorted(keys) != list(range(len(keys))):
            raise AgrideployError(f"{what}: 'names' as a mapping needs the keys 0, 1, 2, ...")
        value = [value[k] for k in range(len(keys))]
    if not isinstance(value, list) or not all(isinstance(n, (str, int, float)) and not isinstance(n, bool) for n in value):
        raise AgrideployError(f"{what}: 'names' must be a list of class names or a mapping of index to name")
    limits.check("max_classes", len(value), f"{what}: names")
    return [str(n) for n in value]


def check_data_yaml(source: Optional[str], flag: str) -> None:
    """Read and type-check a data.yaml given to `flag`, before any long work (folders are checked where used)."""
    if source and Path(source).suffix.lower() in (".yaml", ".yml"):
        if not Path(source).is_file():
            raise AgrideployError(f"{flag} {source}: no such file")
        read_data_yaml(source, f"{flag} {source}")
