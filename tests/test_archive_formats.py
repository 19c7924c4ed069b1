"""The UEA/UCR archive's other formats: UCR text files (.tsv / .txt) and ARFF, on real archive files
(tests/data: prefixes of the files the aeon wheel ships, see tests/data/README.md) and on small
hand-written files in the published layouts, checked against the .ts version of the same data."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from bilstm_cli.data.io import read_dataset
from bilstm_cli.errors import DataError, UsageError

from .test_formats import assert_same

DATA = Path(__file__).resolve().parent / "data"


def bad(tmp_path, name: str, content: str, *needles: str, error=DataError) -> str:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(error) as info:
        read_dataset(str(path))
    message = str(info.value)
    for needle in (name, *needles):
        assert needle in message, message
    return message


# ---------------------------------------------------------------------------- real archive files


@pytest.mark.parametrize("name", ["GunPoint_TRAIN8.tsv", "GunPoint_TRAIN8.arff"])
def test_real_univariate_files_match_their_ts_version(name):
    data = read_dataset(str(DATA / name))
    assert data.x.shape == (8, 150, 1) and data.classes == ["1", "2"]
    assert data.y.tolist() == [1, 1, 0, 0, 1, 1, 1, 1]  # labels 2 2 1 1 2 2 2 2
    assert data.x[0, :3, 0].tolist() == pytest.approx([-0.6478854, -0.64199155, -0.63818632])
    assert_same(data, read_dataset(str(DATA / "GunPoint_TRAIN8.ts")))


def test_real_multivariate_arff_matches_its_ts_version():
    data = read_dataset(str(DATA / "BasicMotions_TRAIN4.arff"))
    assert data.x.shape == (4, 100, 6) and data.task == "sequence"
    assert data.classes == ["Standing", "Running", "Walking", "Badminton"]  # declared order, as .ts
    assert_same(data, read_dataset(str(DATA / "BasicMotions_TRAIN4.ts")))


def test_univariate_arff_matches_scipy():
    arff = pytest.importorskip("scipy.io.arff")
    rows, meta = arff.loadarff(DATA / "GunPoint_TRAIN8.arff")
    data = read_dataset(str(DATA / "GunPoint_TRAIN8.arff"))
    expected = np.array([[row[i] for i in range(150)] for row in rows], dtype=np.float32)
    assert np.array_equal(data.x[:, :, 0], expected)
    assert [data.classes[c] for c in data.y] == [row[-1].decode() for row in rows]


def test_archive_formats_are_sniffed_on_stdin():
    for name in ("GunPoint_TRAIN8.tsv", "GunPoint_TRAIN8.arff", "BasicMotions_TRAIN4.arff"):
        raw = (DATA / name).read_bytes()
        assert_same(read_dataset("-", stdin=io.BytesIO(raw)), read_dataset(str(DATA / name)))


# ---------------------------------------------------------------------------- UCR text files

# Unequal-length UCR 2018 files pad every series with NaN to the longest (as the archive's
# AllGestureWiimoteX_TRAIN.tsv); the .ts version of the same data for comparison
UNEQUAL_TSV = "1\t0.5\t1.5\t2.5\n2\t-1\tNaN\tNaN\n1\t3\t4\tNaN\n"
UNEQUAL_TS = "@problemName U\n@univariate true\n@equalLength false\n@classLabel true 1 2\n@data\n"
UNEQUAL_TS += "0.5,1.5,2.5:1\n-1:2\n3,4:1\n"


def test_ucr_trailing_nans_are_padding(tmp_path):
    (tmp_path / "u.tsv").write_text(UNEQUAL_TSV)
    (tmp_path / "u.ts").write_text(UNEQUAL_TS)
    data = read_dataset(str(tmp_path / "u.tsv"))
    assert data.lengths.tolist() == [3, 1, 2] and data.variable_length
    assert_same(data, read_dataset(str(tmp_path / "u.ts")))


def test_ucr_old_txt_and_comma_layouts(tmp_path):
    # the 2015 archive's .txt: space separated, labels and values in %e notation
    (tmp_path / "old.txt").write_text("  1.0000000e+00  5.0000000e-01  1.5000000e+00\n -1.0000000e+00  2.0e+00  3\n")
    data = read_dataset(str(tmp_path / "old.txt"))
    assert data.classes == ["-1", "1"] and data.y.tolist() == [1, 0] and data.x[1, :, 0].tolist() == [2.0, 3.0]
    (tmp_path / "c.tsv").write_text("2,0.5,1.5\n10,1,2\n")
    assert read_dataset(str(tmp_path / "c.tsv")).classes == ["2", "10"]  # ordered by value, not as text


def test_ucr_errors(tmp_path):
    bad(tmp_path, "d.tsv", "1\t0.5\tNaN\t2.5\n", "line 1", "field 3 (step 1)", "missing value", "followed by values")
    bad(tmp_path, "d.tsv", "1\t0.5\t0.7\n2\t0.5\t?\t2.5\n", "line 2", "step 1", "missing value")
    bad(tmp_path, "d.tsv", "1\t0.5\n2\tabc\t0.1\n", "line 2", "field 2 (step 0)", "'abc'", ".tsv and .txt")
    bad(tmp_path, "d.tsv", "1\t0.5\t0.1\n2\tinf\t0.1\n", "line 2", "not finite")
    bad(tmp_path, "d.tsv", "1\t0.5\n2\tNaN\tNaN\n", "line 2", "empty series")
    bad(tmp_path, "d.txt", "1\n", "line 1", "no values")
    bad(tmp_path, "d.tsv", "1.5\t0.5\n", "line 1", "'1.5'", "not a whole number")
    bad(tmp_path, "d.tsv", "1\t0.5\ncat\t0.5\n", "labels mix numbers", "line 2")
    bad(tmp_path, "d.txt", "sequence,step,x,y\n0,0,0.5,1\n", "line 1", "not a number", "--input-format")
    with pytest.raises(DataError, match="labels are one per sequence"):
        (tmp_path / "ok.tsv").write_text("1\t0.5\n2\t0.5\n")
        read_dataset(str(tmp_path / "ok.tsv"), task="per-step")


# ---------------------------------------------------------------------------- ARFF

# The UEA archive's ARFF layout for unequal-length multivariate data (JapaneseVowels_TRAIN.arff):
# each dimension padded with '?' to the declared steps, dimensions separated by a literal \n
UNEQUAL_ARFF = r"""% a comment
@relation 'Unequal'

@attribute relationalAtt relational
@attribute att0 numeric
@attribute att1 numeric
@attribute att2 numeric
@end relationalAtt
@attribute target {walk,run}

@data
'0.5,1.5,2.5\n1,2,3',run
'-1,?,?\n4,?,?',walk
"""
UNEQUAL_ARFF_TS = "@problemName U\n@univariate false\n@dimensions 2\n@equalLength false\n@classLabel true walk run\n"
UNEQUAL_ARFF_TS += "@data\n0.5,1.5,2.5:1,2,3:run\n-1:4:walk\n"

UNIVARIATE_ARFF = """@relation tiny
@attribute att0 numeric
@attribute att1 real
@attribute 'class' {'a b',c}
@data
0.1,0.2,'a b'
0.3,?,c
"""


def test_arff_trailing_question_marks_are_padding(tmp_path):
    (tmp_path / "u.arff").write_text(UNEQUAL_ARFF)
    (tmp_path / "u.ts").write_text(UNEQUAL_ARFF_TS)
    data = read_dataset(str(tmp_path / "u.arff"))
    assert data.lengths.tolist() == [3, 1] and data.features == 2 and data.classes == ["walk", "run"]
    assert_same(data, read_dataset(str(tmp_path / "u.ts")))


def test_univariate_arff_with_quoted_names(tmp_path):
    (tmp_path / "u.arff").write_text(UNIVARIATE_ARFF)
    data = read_dataset(str(tmp_path / "u.arff"))
    assert data.classes == ["a b", "c"] and data.y.tolist() == [0, 1] and data.lengths.tolist() == [2, 1]


def test_arff_errors(tmp_path):
    head = "@relation r\n@attribute a0 numeric\n@attribute a1 numeric\n@attribute c {x,y}\n@data\n"
    bad(tmp_path, "d.arff", head + "0.1,?,x\n?,0.2,y\n", "line 7", "step 0", "missing value '?' followed by values")
    bad(tmp_path, "d.arff", head + "0.1,abc,x\n", "line 6", "'abc' is not a number")
    bad(tmp_path, "d.arff", head + "0.1,0.2,z\n", "line 6", "label 'z'", "not declared", "x, y")
    bad(tmp_path, "d.arff", head + "0.1,0.2\n", "line 6", "2 values, expected 3")
    bad(tmp_path, "d.arff", head + "0.1,0.2,?\n", "line 6", "class label is missing")
    bad(tmp_path, "d.arff", head + "{0 0.1, 2 x}\n", "line 6", "sparse")
    bad(tmp_path, "d.arff", head + "0.1,inf,x\n", "line 6", "not finite")
    bad(tmp_path, "d.arff", head, "no data rows")
    bad(tmp_path, "d.arff", head.replace("{x,y}", "numeric"), "line 4", "regression target")
    bad(tmp_path, "d.arff", head.replace("a1 numeric", "a1 string"), "line 3", "'a1' is string, not numeric")
    bad(tmp_path, "d.arff", head.replace("@data\n", ""), "no @data line")
    bad(tmp_path, "d.arff", head.replace("{x,y}", "{x,x}"), "line 4", "'x' more than once")
    relational = UNEQUAL_ARFF.replace("'-1,?,?\\n4,?,?'", "'-1,?,?\\n4,5,?'")
    bad(tmp_path, "d.arff", relational, "line 13", "dimensions have different lengths (1, 2")
    bad(tmp_path, "d.arff", UNEQUAL_ARFF.replace("'-1,?,?\\n4,?,?'", "'-1,?,?\\n4,?'"), "dimension 1 has 2 values")
    bad(
        tmp_path,
        "d.arff",
        UNEQUAL_ARFF.replace("@end relationalAtt\n", ""),
        "line 8",
        "'@end relationalAtt' line missing",
    )
    bad(tmp_path, "d.arff", UNEQUAL_ARFF.replace("'0.5", "0.5"), "line 12", "unterminated quote")
    bad(tmp_path, "d.arff", UNEQUAL_ARFF.replace("\n@data", "\n@end relationalAtt\n@data"), "line 11", "closes no")


def test_unknown_extension_names_the_new_formats(tmp_path):
    (tmp_path / "d.xlsx").write_text("x")
    with pytest.raises(UsageError, match=r"\.tsv, \.txt or \.arff"):
        read_dataset(str(tmp_path / "d.xlsx"))


def test_train_on_arff_evaluate_on_tsv(cli, tmp_path, tiny):
    """The one end-to-end run: train on the real GunPoint ARFF, score the same cases from the .tsv."""
    flags = tiny(epochs=2, samples_per_epoch=None, validation_size=None, units=4, log_every=1, seed=1)
    arff, tsv = DATA / "GunPoint_TRAIN8.arff", DATA / "GunPoint_TRAIN8.tsv"
    result = cli("train", "--data", arff, "--val-data", tsv, *flags, "--out", tmp_path / "run", "--quiet")
    assert result.exit_code == 0, result.stderr
    assert cli("evaluate", tmp_path / "run", "--data", tsv).exit_code == 0
    lines = cli("predict", tmp_path / "run", DATA / "GunPoint_TRAIN8.ts").stdout.splitlines()
    assert lines[0] == "sequence,class,probability" and len(lines) == 9
    assert {line.split(",")[1] for line in lines[1:]} <= {"1", "2"}  # the archive's class names


WHEEL = Path(__file__).resolve().parents[1] / "benchmarks" / ".data" / "_wheel" / "aeon-1.6.0-py3-none-any.whl"


@pytest.mark.skipif(not WHEEL.exists(), reason="the aeon wheel is fetched by benchmarks/fetch_datasets.py")
@pytest.mark.parametrize(
    "member",
    [
        "GunPoint_TRAIN.tsv",
        "GunPoint_TRAIN.arff",
        "ArrowHead_TRAIN.tsv",
        "ArrowHead_TRAIN.arff",
        "BasicMotions_TRAIN.arff",
    ],
)
def test_whole_archive_files_match_their_ts_version(tmp_path, member):
    """Where the fetched wheel is at hand: the whole published files, not only their first cases."""
    import zipfile

    name = member.split("_")[0]
    with zipfile.ZipFile(WHEEL) as wheel:
        for file in (member, f"{name}_TRAIN.ts"):
            (tmp_path / file).write_bytes(wheel.read(f"aeon/datasets/data/{name}/{file}"))
    assert_same(read_dataset(str(tmp_path / member)), read_dataset(str(tmp_path / f"{name}_TRAIN.ts")))
