"""Reading weights files: ``.npz`` (keys ``'layer/Prop'``) and MATLAB ``.mat`` (a struct per layer,
or variables ``layer__Prop``), as untrusted data.

Nothing in a file runs (``.npz`` without pickles) and nothing is decompressed before its size is
known: the arrays' declared sizes (the zip directory and each ``.npy`` header; the ``.mat``
variable headers) must add up to at most :data:`MAX_BYTES`, so a small compressed file cannot
inflate to gigabytes.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np
import scipy.io
from scipy.io.matlab import mat_struct

from .errors import CodegenError, NetworkError

MAX_BYTES = 2**30          # the decoded arrays of one weights file (4x the weights codegen writes as C)
MAT_ITEMSIZE = {"double": 8, "single": 4, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4,
                "int64": 8, "uint64": 8, "logical": 1, "char": 2}


def _too_big(path: Path, total: int) -> NetworkError:
    return NetworkError(f"weights file '{path}' holds {total:,} bytes of arrays once decompressed; at most "
                        f"{MAX_BYTES:,} are read")


def _npz_sizes(path: Path) -> None:
    """The decoded size of every array of a .npz, from its zip entry and its .npy header."""
    total = 0
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            total += info.file_size
            if total > MAX_BYTES:
                raise _too_big(path, total)
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(member)
                if dtype.hasobject:
                    raise NetworkError(f"weights file '{path}': array '{info.filename}' holds Python objects; "
                                       "only numeric arrays are read")
                declared = math.prod(shape) * dtype.itemsize
                if declared > info.file_size:
                    raise NetworkError(f"weights file '{path}': array '{info.filename}' claims {declared:,} bytes "
                                       f"in a {info.file_size:,}-byte entry")


def _mat_sizes(path: Path) -> None:
    total = 0
    for name, shape, cls in scipy.io.whosmat(path):
        total += math.prod(shape) * MAT_ITEMSIZE.get(cls, 8)
        if total > MAX_BYTES:
            raise _too_big(path, total)


def _mat_value(value):
    """A loaded MATLAB variable: a scalar struct becomes {field: array}; an array stays as saved."""
    if isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.item()
    if isinstance(value, mat_struct):
        return {field: getattr(value, field) for field in value._fieldnames}
    return value


def load_weights_file(path) -> dict:
    """{key: array} from a .npz or .mat file; NetworkError naming the file for anything else."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".mat"):
        raise NetworkError(f"cannot read weights file '{path}': expected a .npz or .mat file")
    try:
        if suffix == ".npz":
            _npz_sizes(path)
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        _mat_sizes(path)
        # not simplify_cells: it squeezes every array, so a 5x5x1x20 weight would load as 5x5x20
        data = scipy.io.loadmat(path, struct_as_record=False)
        return {k: _mat_value(v) for k, v in data.items() if not k.startswith("__")}
    except CodegenError:
        raise
    except Exception as exc:  # noqa: BLE001 - any read failure is the user's file
        raise NetworkError(f"cannot read weights file '{path}': {exc}") from None


def _npy_size(path: Path) -> None:
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(f)
    declared = math.prod(shape) * dtype.itemsize
    if dtype.hasobject or declared > MAX_BYTES:
        raise NetworkError(f"images file '{path}': {dtype} array of shape {shape}; a numeric array of at most "
                           f"{MAX_BYTES:,} bytes is read")


def load_images_file(path) -> np.ndarray:
    """The images of a .npy file, or of a .npz holding one array (or an array named 'images'): the
    calibration set for int8; read as untrusted data, like weights files."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise NetworkError(f"cannot read images file '{path}': expected a .npy or .npz file")
    try:
        if suffix == ".npy":
            _npy_size(path)
            return np.load(path, allow_pickle=False)
        _npz_sizes(path)
        with np.load(path, allow_pickle=False) as data:
            if "images" in data.files:
                return data["images"]
            if len(data.files) != 1:
                raise NetworkError(f"images file '{path}' holds arrays {', '.join(data.files)}; expected one array "
                                   "or one named 'images'")
            return data[data.files[0]]
    except CodegenError:
        raise
    except Exception as exc:  # noqa: BLE001 - any read failure is the user's file
        raise NetworkError(f"cannot read images file '{path}': {exc}") from None
