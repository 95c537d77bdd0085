"""Reader of the UCR/UEA time-series classification archive's ``.ts`` format.

A ``.ts`` file has ``@key value`` header lines (``@problemName``, ``@univariate``,
``@equalLength``, ``@classLabel true a b c``, ...), then ``@data`` and one case per line: the
dimensions separated by ``:``, each a comma-separated list of values (``?`` or ``NaN`` for missing),
and the class label last. Univariate and multivariate, equal and unequal length are read;
time-stamped files (``@timeStamps true``) are not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstmkit.errors import DataError

__all__ = ["TsData", "read_ts", "ucr_path"]


@dataclass
class TsData:
    """The cases of a ``.ts`` file.

    Attributes:
        series: one ``(length, dimensions)`` float array per case.
        labels: the class label of each case (strings, as written).
        header: the ``@`` header values (lower-cased keys).
        class_labels: the labels the header declares, in order.
    """

    series: list[np.ndarray]
    labels: list[str]
    header: dict[str, str] = field(default_factory=dict)
    class_labels: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.series)


def read_ts(path: str | Path) -> TsData:
    """Read a ``.ts`` classification file.

    Raises:
        DataError: the file is empty, not UTF-8 (with the byte offset), time-stamped, or a line is
            malformed (with its line number).
    """
    path = Path(path)
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path} is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not UTF-8 text: undecodable byte 0x{raw[error.start]:02x} at offset "
                        f"{error.start}") from None
    header: dict[str, str] = {}
    series: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise DataError(f"{path}, line {number}: expected an @header line or @data, got {line[:40]!r}")
            key, _, value = line[1:].partition(" ")
            key = key.lower()
            if key == "data":
                in_data = True
                if header.get("timestamps", "false").lower() == "true":
                    raise DataError(f"{path} has time stamps (@timeStamps true), which this reader does not support")
            else:
                header[key] = value.strip()
            continue
        parts = line.split(":")
        has_label = header.get("classlabel", "false").split(" ")[0].lower() == "true"
        if has_label and len(parts) < 2:
            raise DataError(f"{path}, line {number}: a case needs its dimensions and a class label after ':'")
        dims = parts[:-1] if has_label else parts
        try:
            arrays = [np.array([float("nan") if v.strip() in ("?", "") else float(v) for v in d.split(",")],
                               dtype=np.float32) for d in dims]
        except ValueError as error:
            raise DataError(f"{path}, line {number}: a value is not a number ({error})") from None
        length = max(len(a) for a in arrays)
        # dimensions of one case may differ in length only in unequal-length files; pad with NaN
        case = np.full((length, len(arrays)), np.nan, dtype=np.float32)
        for k, a in enumerate(arrays):
            case[: len(a), k] = a
        series.append(case)
        labels.append(parts[-1].strip() if has_label else "")
    if not series:
        raise DataError(f"{path} has no cases after @data")
    dims = {s.shape[1] for s in series}
    if len(dims) > 1:
        raise DataError(f"{path}: cases have different numbers of dimensions {sorted(dims)}")
    declared = header.get("classlabel", "").split()[1:]
    return TsData(series, labels, header, declared)


def ucr_path(name: str, split: str) -> Path:
    """The bundled copy of a UCR/UEA dataset in the ``aeon`` package (a test/benchmark extra).

    Args:
        name: the dataset, e.g. ``"GunPoint"`` or ``"ItalyPowerDemand"``.
        split: ``"TRAIN"`` or ``"TEST"``.
    """
    try:
        import importlib.resources as resources

        root = resources.files("aeon.datasets") / "data" / name / f"{name}_{split.upper()}.ts"
    except ModuleNotFoundError:
        raise DataError(f"the UCR dataset {name!r} comes with the 'aeon' package; install it with "
                        "pip install aeon (or lstmkit's dev extras)") from None
    path = Path(str(root))
    if not path.is_file():
        raise DataError(f"aeon does not ship {name}_{split}.ts (looked in {path.parent})")
    return path
