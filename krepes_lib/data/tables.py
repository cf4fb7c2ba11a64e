"""Table loaders: CoverType, Adult, HIGGS, Bank marketing.

Numeric features are standardised (``standardize=True``: zero mean and unit variance with the
statistics of the reference rows named in each loader), categorical features one-hot
encoded. ``feature_groups`` maps each original feature to its columns of ``X`` (so the
one-hot columns of one categorical feature can be found together), ``categorical`` names
the categorical features, ``X_raw`` holds one float column per original feature before
encoding (the numeric value, or the category code indexing ``categories[feature]``).
Every file read is found with :func:`~krepes_lib.data.paths.find_file`, which checks it
against its registered SHA-256.
"""
from __future__ import annotations

import csv
import gzip
import io
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .dataset import Dataset, _available_info, _check_split, stratified_indices
from .paths import _find_first, _missing_message, data_dirs, find_file

__all__ = ["covtype", "adult", "higgs", "bank", "COVTYPE_NUMERIC", "COVTYPE_CLASSES",
           "COVTYPE_WILDERNESS", "ADULT_FEATURES", "ADULT_CATEGORICAL", "HIGGS_FEATURES"]


def _standardize_stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = values.mean(axis=0)
    std = values.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return mean, std


def _encode(
    columns: dict[str, np.ndarray],
    categorical: dict[str, list[str]],
    standardize: bool,
    fit_rows: np.ndarray | None = None,
) -> dict[str, Any]:
    """Numeric columns (float arrays) and categorical codes (int arrays) -> X, X_raw, groups.

    ``columns`` is ordered like the original features; a feature in ``categorical`` holds
    integer codes into ``categorical[feature]``. Statistics use the rows ``fit_rows``
    (default all).
    """
    names = list(columns)
    n_rows = len(next(iter(columns.values())))
    X_raw = np.column_stack([np.asarray(columns[k], dtype=np.float64) for k in names])
    numeric = [k for k in names if k not in categorical]
    num_idx = [names.index(k) for k in numeric]
    stats: dict[str, Any] = {}
    num_vals = X_raw[:, num_idx]
    if standardize and numeric:
        ref = num_vals if fit_rows is None else num_vals[fit_rows]
        mean, std = _standardize_stats(ref)
        num_vals = (num_vals - mean) / std
        stats = {"features": numeric, "mean": mean.tolist(), "std": std.tolist()}
    blocks, feature_names, groups = [], [], {}
    col = 0
    for k in names:
        if k in categorical:
            cats = categorical[k]
            codes = np.asarray(columns[k], dtype=np.int64)
            onehot = np.zeros((n_rows, len(cats)), dtype=np.float32)
            onehot[np.arange(n_rows), codes] = 1.0
            blocks.append(onehot)
            feature_names += [f"{k}={c}" for c in cats]
            groups[k] = list(range(col, col + len(cats)))
            col += len(cats)
        else:
            blocks.append(num_vals[:, [numeric.index(k)]].astype(np.float32))
            feature_names.append(k)
            groups[k] = [col]
            col += 1
    X = np.concatenate(blocks, axis=1).astype(np.float32, copy=False)
    return {
        "X": X, "X_raw": X_raw, "feature_names": feature_names, "feature_groups": groups,
        "raw_feature_names": names, "standardization": stats,
    }  # fmt: skip


def _codes(values: Sequence[str], cats: list[str]) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(cats)}
    return np.fromiter((lookup[v] for v in values), dtype=np.int64, count=len(values))


def _table_dataset(enc: dict[str, Any], y_all, idx, **kw) -> Dataset:
    info = kw.pop("info", {})
    info = {**info, "standardization": enc["standardization"]}
    return Dataset(
        X=enc["X"][idx], y=y_all[idx], feature_names=enc["feature_names"],
        feature_groups=enc["feature_groups"], X_raw=enc["X_raw"][idx],
        raw_feature_names=enc["raw_feature_names"], indices=idx, info=info, **kw,
    )  # fmt: skip


# --- CoverType ----------------------------------------------------------------------------
COVTYPE_NUMERIC = [
    "Elevation", "Aspect", "Slope", "Horizontal_Distance_To_Hydrology",
    "Vertical_Distance_To_Hydrology", "Horizontal_Distance_To_Roadways", "Hillshade_9am",
    "Hillshade_Noon", "Hillshade_3pm", "Horizontal_Distance_To_Fire_Points",
]  # fmt: skip
COVTYPE_CLASSES = [
    "Spruce/Fir", "Lodgepole Pine", "Ponderosa Pine", "Cottonwood/Willow",
    "Aspen", "Douglas-fir", "Krummholz",
]  # fmt: skip
COVTYPE_WILDERNESS = ["Rawah", "Neota", "Comanche Peak", "Cache la Poudre"]


def covtype(
    n: int | None = None, seed: Any = 0, source: str = "auto", standardize: bool = True
) -> Dataset:
    """Forest CoverType (Blackard & Dean), https://archive.ics.uci.edu/dataset/31/covertype.

    ``source="official"``: the full UCI ``covtype/covtype.data.gz`` (581,012 rows);
    ``source="kaggle"``: ``covtype/forest_cover_kaggle_train.csv``, the 15,120-row training
    set of the Kaggle "Forest Cover Type Prediction" competition, 2,160 rows per class
    (``shared/data/covtype/SOURCE.md``; its ``Id`` column is dropped). ``"auto"`` prefers
    the full file.

    Features: 10 numeric columns, then Wilderness_Area (4 one-hot columns) and Soil_Type
    (40 one-hot columns), in the UCI order. ``X`` keeps the binary columns as in the file;
    the numeric columns are standardised with the mean/std of all rows of the file read.
    ``X_raw`` has 12 columns: the 10 raw numeric values, the wilderness code (0..3) and the
    soil code (0..39) (NaN for a row without exactly one column set).

    Parameters
    ----------
    n : int, optional
        Stratified random subset size.
    seed : int or Generator, default 0
    source : {"auto", "official", "kaggle"}, default "auto"
    standardize : bool, default True

    Returns
    -------
    Dataset
        Labels 0..6 for cover types 1..7.
    """
    if source not in ("auto", "official", "kaggle"):
        raise ValueError(f"source={source!r}: use 'auto', 'official' or 'kaggle'.")
    path = None
    if source in ("auto", "official"):
        path = _find_first("covtype", ["covtype.data.gz"])
        if path is None and source == "official":
            raise FileNotFoundError(_missing_message("covtype", "covtype.data.gz", data_dirs()))
    if path is not None:
        with gzip.open(path, "rt") as f:
            arr = np.loadtxt(f, delimiter=",", dtype=np.int64)
        if arr.ndim != 2 or arr.shape[1] != 55:
            raise ValueError(f"{path}: expected 55 columns, got shape {arr.shape}.")
        feats, labels, fmt = arr[:, :54], arr[:, 54], "UCI covtype.data.gz"
    else:
        try:
            path = find_file("covtype", "forest_cover_kaggle_train.csv")
        except FileNotFoundError:
            raise FileNotFoundError(
                _missing_message("covtype", "covtype.data.gz", data_dirs())
                + " (The Kaggle subset forest_cover_kaggle_train.csv is absent too.)"
            ) from None
        with open(path, newline="") as f:
            header = f.readline().strip().split(",")
            arr = np.loadtxt(f, delimiter=",", dtype=np.int64)
        if header[0] != "Id" or header[-1] != "Cover_Type" or arr.shape[1] != 56:
            raise ValueError(f"{path}: expected Id, 54 features, Cover_Type; got {header[:3]}...")
        feats, labels, fmt = arr[:, 1:55], arr[:, 55], "Kaggle forest-cover-type-prediction train"
    if labels.min() < 1 or labels.max() > 7:
        raise ValueError(f"{path}: cover types must be 1..7, found {np.unique(labels)}.")
    y_all = labels - 1
    numeric = feats[:, :10].astype(np.float64)
    wild, soil = feats[:, 10:14], feats[:, 14:54]

    def code(block):
        c = block.argmax(axis=1).astype(np.float64)
        c[block.sum(axis=1) != 1] = np.nan
        return c

    X_raw = np.column_stack([numeric, code(wild), code(soil)])
    stats: dict[str, Any] = {}
    num_x = numeric
    if standardize:
        mean, std = _standardize_stats(numeric)
        num_x = (numeric - mean) / std
        stats = {"features": list(COVTYPE_NUMERIC), "mean": mean.tolist(), "std": std.tolist()}
    X = np.concatenate([num_x, wild, soil], axis=1).astype(np.float32)
    soil_names = [f"Soil_Type{i}" for i in range(1, 41)]
    feature_names = (
        list(COVTYPE_NUMERIC)
        + [f"Wilderness_Area={w}" for w in COVTYPE_WILDERNESS]
        + [f"Soil_Type={s}" for s in soil_names]
    )
    groups = {k: [i] for i, k in enumerate(COVTYPE_NUMERIC)}
    groups["Wilderness_Area"] = list(range(10, 14))
    groups["Soil_Type"] = list(range(14, 54))
    idx = stratified_indices(y_all, n, seed)
    return Dataset(
        X=X[idx], y=y_all[idx], classes=list(COVTYPE_CLASSES), name="covtype",
        feature_names=feature_names, feature_groups=groups,
        categorical={"Wilderness_Area", "Soil_Type"}, X_raw=X_raw[idx],
        raw_feature_names=list(COVTYPE_NUMERIC) + ["Wilderness_Area", "Soil_Type"],
        categories={"Wilderness_Area": list(COVTYPE_WILDERNESS), "Soil_Type": soil_names},
        indices=idx, source=[str(path)],
        info={**_available_info(y_all, 7), "format": fmt, "standardization": stats},
    )  # fmt: skip


# --- Adult --------------------------------------------------------------------------------
ADULT_FEATURES = [
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
    "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
    "hours-per-week", "native-country",
]  # fmt: skip
ADULT_CATEGORICAL = [
    "workclass", "education", "marital-status", "occupation", "relationship", "race",
    "sex", "native-country",
]  # fmt: skip


def _read_adult(path: Path, is_test: bool) -> tuple[list[list[str]], int]:
    """Complete rows (no '?') of adult.data / adult.test and the count of all rows."""
    rows, total = [], 0
    with open(path, newline="") as f:
        for line_no, line in enumerate(f):
            line = line.strip()
            if not line or (is_test and line_no == 0 and line.startswith("|")):
                continue
            fields = [v.strip() for v in line.split(",")]
            if len(fields) != 15:
                raise ValueError(f"{path}:{line_no + 1}: expected 15 fields, got {len(fields)}.")
            total += 1
            if "?" in fields:
                continue
            rows.append(fields)
    return rows, total


def adult(
    split: str = "train", n: int | None = None, seed: Any = 0, standardize: bool = True
) -> Dataset:
    """UCI Adult / Census Income (Kohavi & Becker 1996), https://archive.ics.uci.edu/dataset/2/adult.

    Reads ``adult/adult.data`` (32,561 rows) and ``adult/adult.test`` (16,281 rows; first
    line ``|1x3 Cross validator`` skipped, labels end with ``.``) and drops every row with a
    ``?`` — 30,162 + 15,060 complete rows, as stated in ``adult.names`` and
    ``shared/data/adult/SOURCE.md``. Label ``>50K`` / ``>50K.`` -> 1.

    The 6 numeric features are standardised with the mean/std of the complete training rows
    (adult.data) whatever the split; the 8 categorical features are one-hot encoded over the
    categories seen in the complete rows of both files (sorted), so the columns are the same
    for every split (104 columns).

    Parameters
    ----------
    split : {"train", "test", "all"}, default "train"
        ``"all"`` stacks train then test; ``info["n_train"]`` rows (before subsetting) are
        training rows, so a returned row is a training row iff ``indices < n_train``.
    n : int, optional
        Stratified random subset size.
    seed : int or Generator, default 0
    standardize : bool, default True

    Returns
    -------
    Dataset
        Classes ``["<=50K", ">50K"]``.
    """
    _check_split(split, ("train", "test", "all"))
    p_train, p_test = find_file("adult", "adult.data"), find_file("adult", "adult.test")
    train_rows, train_total = _read_adult(p_train, is_test=False)
    test_rows, test_total = _read_adult(p_test, is_test=True)
    rows = train_rows + test_rows
    label_map = {"<=50K": 0, ">50K": 1, "<=50K.": 0, ">50K.": 1}
    try:
        y_both = np.array([label_map[r[14]] for r in rows], dtype=np.int64)
    except KeyError as e:
        raise ValueError(f"adult: unexpected label {e.args[0]!r}.") from None
    categories = {
        k: sorted({r[ADULT_FEATURES.index(k)] for r in rows}) for k in ADULT_CATEGORICAL
    }
    columns: dict[str, np.ndarray] = {}
    for j, k in enumerate(ADULT_FEATURES):
        vals = [r[j] for r in rows]
        columns[k] = _codes(vals, categories[k]) if k in categories else np.array(vals, float)
    n_train = len(train_rows)
    enc = _encode(columns, categories, standardize, fit_rows=np.arange(n_train))
    sel = {"train": slice(0, n_train), "test": slice(n_train, None), "all": slice(None)}[split]
    enc = {**enc, "X": enc["X"][sel], "X_raw": enc["X_raw"][sel]}
    y_all = y_both[sel]
    idx = stratified_indices(y_all, n, seed)
    return _table_dataset(
        enc, y_all, idx, classes=["<=50K", ">50K"], name="adult",
        categorical=set(ADULT_CATEGORICAL), categories=categories, split=split,
        source=[str(p_train), str(p_test)],
        info={**_available_info(y_all, 2), "n_train": n_train, "n_test": len(test_rows),
              "rows_in_files": {"adult.data": train_total, "adult.test": test_total},
              "standardization_rows": "complete rows of adult.data"},
    )  # fmt: skip


# --- HIGGS --------------------------------------------------------------------------------
HIGGS_FEATURES = (
    ["lepton_pT", "lepton_eta", "lepton_phi", "missing_energy_magnitude", "missing_energy_phi"]
    + [f"jet{j}_{q}" for j in range(1, 5) for q in ("pt", "eta", "phi", "b-tag")]
    + ["m_jj", "m_jjj", "m_lv", "m_jlv", "m_bb", "m_wbb", "m_wwbb"]
)


def higgs(
    n: int | None = None,
    seed: Any = 0,
    source: str = "auto",
    max_rows: int | None = None,
    standardize: bool = True,
) -> Dataset:
    """HIGGS (Baldi, Sadowski, Whiteson 2014), https://archive.ics.uci.edu/dataset/280/higgs.

    ``source="official"``: ``higgs/HIGGS.csv.gz`` (11,000,000 rows; the UCI page names the
    last 500,000 as its test set); ``source="h2o"``: ``higgs/higgs_test_5k.csv``, 5,000 rows
    in the same format from h2oai/h2o-tutorials (``shared/data/higgs/SOURCE.md``; 2,315
    background, 2,685 signal). ``"auto"`` prefers the full file. Column 0 is the label,
    columns 1-28 the features (21 low-level, 7 high-level).

    Parameters
    ----------
    n : int, optional
        Stratified random subset size (drawn from the rows read).
    seed : int or Generator, default 0
    source : {"auto", "official", "h2o"}, default "auto"
    max_rows : int, optional
        Read only the first ``max_rows`` rows of the file (the paper's "1M subset" is
        ``max_rows=1_000_000``). Reading all 11M rows needs several GB of memory.
    standardize : bool, default True
        Standardise the 28 features with the mean/std of the rows read.

    Returns
    -------
    Dataset
        Classes ``["background", "signal"]``; ``X_raw`` (float32) holds the raw features.
    """
    if source not in ("auto", "official", "h2o"):
        raise ValueError(f"source={source!r}: use 'auto', 'official' or 'h2o'.")
    if max_rows is not None and (isinstance(max_rows, bool) or int(max_rows) < 1):
        raise ValueError(f"max_rows must be a positive int or None, got {max_rows!r}.")
    path = None
    if source in ("auto", "official"):
        path = _find_first("higgs", ["HIGGS.csv.gz"])
        if path is None and source == "official":
            raise FileNotFoundError(_missing_message("higgs", "HIGGS.csv.gz", data_dirs()))
    if path is None:
        try:
            path = find_file("higgs", "higgs_test_5k.csv")
        except FileNotFoundError:
            raise FileNotFoundError(
                _missing_message("higgs", "HIGGS.csv.gz", data_dirs())
                + " (The 5,000-row sample higgs_test_5k.csv is absent too.)"
            ) from None
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f:
        arr = np.loadtxt(f, delimiter=",", dtype=np.float64, max_rows=max_rows, ndmin=2)
    if arr.shape[1] != 29:
        raise ValueError(f"{path}: expected 29 columns (label + 28 features), got {arr.shape[1]}.")
    labels = arr[:, 0]
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError(f"{path}: labels must be 0 or 1.")
    y_all = labels.astype(np.int64)
    raw = arr[:, 1:].astype(np.float32)
    del arr
    stats: dict[str, Any] = {}
    X = raw
    if standardize:
        mean, std = _standardize_stats(raw.astype(np.float64))
        X = ((raw - mean) / std).astype(np.float32)
        stats = {"features": list(HIGGS_FEATURES), "mean": mean.tolist(), "std": std.tolist()}
    idx = stratified_indices(y_all, n, seed)
    return Dataset(
        X=X[idx], y=y_all[idx], classes=["background", "signal"], name="higgs",
        feature_names=list(HIGGS_FEATURES),
        feature_groups={k: [i] for i, k in enumerate(HIGGS_FEATURES)}, categorical=set(),
        X_raw=raw[idx], raw_feature_names=list(HIGGS_FEATURES), indices=idx,
        source=[str(path)],
        info={**_available_info(y_all, 2), "max_rows": max_rows, "standardization": stats,
              "format": "UCI HIGGS.csv.gz" if str(path).endswith(".gz") else "H2O higgs_test_5k"},
    )  # fmt: skip


# --- Bank marketing -----------------------------------------------------------------------
_BANK_VARIANTS = {
    "full": ("bank.zip", "bank-full.csv"),
    "small": ("bank.zip", "bank.csv"),
    "additional-full": ("bank-additional.zip", "bank-additional-full.csv"),
    "additional": ("bank-additional.zip", "bank-additional.csv"),
}
#: Variants whose CSV may also be present extracted (as in the offline data folder).
_BANK_EXTRACTED = {"full", "additional-full"}


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def bank(
    n: int | None = None,
    seed: Any = 0,
    variant: str = "full",
    standardize: bool = True,
    drop_duration: bool = False,
) -> Dataset:
    """Bank marketing (Moro, Cortez, Rita 2014), https://archive.ics.uci.edu/dataset/222/bank+marketing.

    Reads a CSV (``;``-separated, quoted, with a header; target ``y`` yes/no) from ``bank/``:
    the extracted official member when it is there (``bank/bank-full.csv``,
    ``bank/bank-additional-full.csv``: the offline folder holds these, byte for byte as in
    the zips, see ``shared/data/bank/SOURCE.md``), else straight from the official zip that
    ``krepes fetch-data bank`` downloads. ``variant="full"`` -> ``bank-full.csv`` (45,211
    rows, 16 features; in ``bank.zip``), ``"small"`` -> ``bank.zip:bank.csv`` (4,521 rows),
    ``"additional-full"`` -> ``bank-additional-full.csv`` (41,188 rows, 20 features; in
    ``bank-additional.zip`` under ``bank-additional/``), ``"additional"`` -> its 4,119-row
    sample (zip only). Every file read is checked against its registered SHA-256.

    A column is numeric when every value parses as a number; the others are categorical and
    one-hot encoded (``"unknown"`` is kept as a category). Numeric columns are standardised
    with the mean/std of all rows of the file.

    Parameters
    ----------
    n : int, optional
        Stratified random subset size.
    seed : int or Generator, default 0
    variant : {"full", "small", "additional-full", "additional"}, default "full"
    standardize : bool, default True
    drop_duration : bool, default False
        Drop ``duration`` (the call length, known only after the call; UCI advises dropping
        it for realistic prediction).

    Returns
    -------
    Dataset
        Classes ``["no", "yes"]``; ``info["format"]`` says whether the CSV or the zip was read.
    """
    if variant not in _BANK_VARIANTS:
        raise ValueError(f"variant={variant!r}: use one of {list(_BANK_VARIANTS)}.")
    zip_name, member_name = _BANK_VARIANTS[variant]
    path = _find_first("bank", [member_name]) if variant in _BANK_EXTRACTED else None
    if path is not None:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        where, fmt = str(path), "extracted CSV"
    else:
        try:
            path = find_file("bank", zip_name)
        except FileNotFoundError as err:
            extra = (f" (The extracted {member_name} is absent too.)"
                     if variant in _BANK_EXTRACTED else "")
            raise FileNotFoundError(str(err) + extra) from None
        with zipfile.ZipFile(path) as zf:
            matches = [m for m in zf.namelist() if m.split("/")[-1] == member_name]
            if not matches:
                raise ValueError(f"{path} has no member {member_name}; members: {zf.namelist()}.")
            text = zf.read(matches[0]).decode("utf-8")
        where, fmt = f"{path}:{matches[0]}", "official zip"
    reader = csv.reader(io.StringIO(text), delimiter=";", quotechar='"')
    header = [h.strip() for h in next(reader)]
    rows = [r for r in reader if r]
    if header[-1] != "y":
        raise ValueError(f"{where}: last column should be 'y', got {header[-1]!r}.")
    bad = [i for i, r in enumerate(rows) if len(r) != len(header)]
    if bad:
        raise ValueError(f"{where}: row {bad[0] + 2} has the wrong number of fields.")
    label_map = {"no": 0, "yes": 1}
    y_all = np.array([label_map[r[-1].strip()] for r in rows], dtype=np.int64)
    columns: dict[str, np.ndarray] = {}
    categories: dict[str, list[str]] = {}
    for j, k in enumerate(header[:-1]):
        if drop_duration and k == "duration":
            continue
        vals = [r[j].strip() for r in rows]
        if all(_is_number(v) for v in vals):
            columns[k] = np.array(vals, dtype=np.float64)
        else:
            categories[k] = sorted(set(vals))
            columns[k] = _codes(vals, categories[k])
    enc = _encode(columns, categories, standardize)
    idx = stratified_indices(y_all, n, seed)
    return _table_dataset(
        enc, y_all, idx, classes=["no", "yes"], name="bank", categorical=set(categories),
        categories=categories, source=[where],
        info={**_available_info(y_all, 2), "variant": variant, "format": fmt},
    )  # fmt: skip
