"""Loading catalogs, judgments and queries from user files: formats, normalisation, errors and splits."""

from __future__ import annotations

import gzip
import json
import logging
import pickle
import random
import time
from pathlib import Path

import pandas as pd
import pytest

from harnesslm.data import (
    DataError,
    limit_queries,
    load_catalog,
    load_judgments,
    load_queries,
    normalize_query,
    normalize_text,
    queries_of,
    read_table,
    split_by_query,
)

HOMEDEPOT = Path(__file__).resolve().parents[3] / "shared/data/homedepot"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    return write(path, "".join(json.dumps(r) + "\n" for r in records))


# --- text normalisation -------------------------------------------------------------------------


def test_normalize_text_unescapes_repeatedly_and_collapses_whitespace() -> None:
    assert normalize_text("  Tom &amp;amp; Jerry\t\n&lt;b&gt;  ") == "Tom & Jerry <b>"
    assert normalize_text("ﬁne\u00a0print  ２x４") == "fine print 2x4"  # NFKC: ligature, nbsp, full-width
    assert normalize_text("&#38;amp;") == "&"
    assert normalize_text(" \t ") == ""


def test_normalize_query_casefolds() -> None:
    assert normalize_query("  Straße  LIGHTS ") == "strasse lights"
    assert normalize_query("Fence  Mesh") == normalize_query("fence mesh")


# --- formats --------------------------------------------------------------------------------------


def test_read_table_csv_keeps_strings_and_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path / "items.csv", 'sku,name,extra\n00123,"multi\nline",x\n\n007,plain,y\n')
    frame = read_table(path, ["sku", "name"])
    assert frame["sku"].tolist() == ["00123", "007"]
    assert frame["name"].tolist() == ["multi\nline", "plain"]
    assert frame["_line"].tolist() == [2, 5]  # the quoted field spans lines 2-3, line 4 is blank


def test_read_table_missing_values_are_empty_strings(tmp_path: Path) -> None:
    path = write(tmp_path / "items.csv", "sku,name\n1,\n2\n")
    assert read_table(path, ["sku", "name"])["name"].tolist() == ["", ""]


def test_read_table_tolerates_bom_and_gzip(tmp_path: Path) -> None:
    path = tmp_path / "items.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8-sig") as handle:
        handle.write("sku,name\n0001,a\n")
    frame = read_table(path, ["sku"])
    assert frame["sku"].tolist() == ["0001"]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_catalog_round_trip_in_every_format_with_custom_columns(tmp_path: Path, fmt: str) -> None:
    ids, titles = ["00123", "0042", "7"], ["Drill &amp;amp; Bits", "  Saw\t blade ", "Hammer"]
    frame = pd.DataFrame({"sku": ids, "title": titles, "price": ["1", "2", "3"]})
    path = tmp_path / f"catalog.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif fmt == "jsonl":
        write_jsonl(path, frame.to_dict("records"))
    else:
        frame.to_parquet(path, index=False)
    catalog = load_catalog(path, id_column="sku", text_column="title")
    assert list(catalog.columns) == ["item_id", "text"]
    assert catalog["item_id"].tolist() == ["00123", "0042", "7"]
    assert catalog["text"].tolist() == ["Drill & Bits", "Saw blade", "Hammer"]
    assert catalog.attrs["stats"] == {"rows_read": 3, "duplicates_merged": 0, "conflicting_duplicates": 0}


def test_forced_format_overrides_suffix(tmp_path: Path) -> None:
    path = write(tmp_path / "catalog.txt", "a\tb\n1\tx\n")
    assert load_catalog(path, id_column="a", text_column="b", fmt="tsv")["text"].tolist() == ["x"]


def test_ndjson_and_parquet_non_string_values(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "j.ndjson", [{"q": "a", "id": 5, "rel": 2}, {"q": "b", "id": "05", "rel": 1.5}])
    judgments = load_judgments(path, None, query_column="q", item_column="id", label_column="rel")
    assert judgments["item_id"].tolist() == ["5", "05"]
    assert judgments["label"].tolist() == [2.0, 1.5]
    parquet = tmp_path / "j.parquet"
    pd.DataFrame({"q": ["a", "b"], "id": [5, 6], "rel": [2.0, 3.0]}).to_parquet(parquet)
    judgments = load_judgments(parquet, {"5", "6"}, query_column="q", item_column="id", label_column="rel")
    assert judgments["item_id"].tolist() == ["5", "6"]
    assert judgments["label"].tolist() == [2.0, 3.0]


# --- catalog --------------------------------------------------------------------------------------


def test_catalog_merges_duplicates_and_warns_on_conflicts(tmp_path: Path, caplog) -> None:
    path = write(tmp_path / "p.csv", "product_uid,product_title\n1,Saw\n2,Drill\n1,Saw\n2,Other drill\n3,Nail\n")
    with caplog.at_level(logging.WARNING, logger="harnesslm.data.loading"):
        catalog = load_catalog(path)
    assert catalog["item_id"].tolist() == ["1", "2", "3"]
    assert catalog["text"].tolist() == ["Saw", "Drill", "Nail"]
    assert catalog.attrs["stats"] == {"rows_read": 5, "duplicates_merged": 2, "conflicting_duplicates": 1}
    assert len(caplog.records) == 1 and "1 rows repeat an item id with a different text" in caplog.text


def test_catalog_identical_duplicates_are_silent(tmp_path: Path, caplog) -> None:
    path = write(tmp_path / "p.csv", "product_uid,product_title\n1,Saw\n1, Saw \n")
    with caplog.at_level(logging.WARNING):
        assert len(load_catalog(path)) == 1
    assert not caplog.records


# --- judgments & queries --------------------------------------------------------------------------


def test_judgments_normalise_queries_and_average_duplicates(tmp_path: Path) -> None:
    path = write(
        tmp_path / "dev.csv",
        "search_term,product_uid,relevance\nFence  Mesh,1,3\nfence mesh,1,2\nfence mesh,2,1\nsaw,1,2.5\n",
    )
    judgments = load_judgments(path, {"1", "2"})
    assert judgments.to_dict("list") == {
        "query": ["fence mesh", "fence mesh", "saw"],
        "item_id": ["1", "2", "1"],
        "label": [2.5, 1.0, 2.5],
    }
    assert judgments.attrs["stats"] == {"rows_read": 4, "duplicates_merged": 1, "queries": 2}


def test_load_queries_unique_normalised_first_seen(tmp_path: Path) -> None:
    path = write(tmp_path / "q.tsv", "id\tquery\n1\tSaw\n2\t\n3\tdrill &amp; bits\n4\t  saw \n")
    assert load_queries(path, query_column="query") == ["saw", "drill & bits"]


# --- errors ---------------------------------------------------------------------------------------


def error_of(call, *args, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        call(*args, **kwargs)
    return info.value


def test_error_message_format() -> None:
    error = DataError("empty id", path="products.csv", line=17, field="product_uid")
    assert str(error) == "products.csv, line 17, field 'product_uid': empty id"
    assert str(DataError("file not found", path="x.csv")) == "x.csv: file not found"
    assert str(DataError("bad", row=3)) == "row 3: bad"
    assert isinstance(error, ValueError)
    assert str(pickle.loads(pickle.dumps(error))) == str(error)


def test_missing_file(tmp_path: Path) -> None:
    error = error_of(load_catalog, tmp_path / "nope.csv")
    assert error.path == tmp_path / "nope.csv"
    assert str(error).endswith("nope.csv: file not found")


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "file is empty"), ("\n\n", "file is empty"), ("product_uid,product_title\n", "no data rows")],
)
def test_empty_files(tmp_path: Path, text: str, reason: str) -> None:
    path = write(tmp_path / "p.csv", text)
    assert reason in str(error_of(load_catalog, path))
    assert "file is empty" in str(error_of(load_catalog, write(tmp_path / "p.jsonl", "\n")))


def test_missing_column_lists_available_ones(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "uid,title\n1,a\n")
    message = str(error_of(load_catalog, path))
    assert "p.csv" in message
    assert "missing columns 'product_uid', 'product_title'; available columns: uid, title" in message
    jsonl = write_jsonl(tmp_path / "p.jsonl", [{"uid": "1", "title": "a"}])
    assert "missing column 'product_uid'; available columns: uid, title" in str(
        error_of(load_catalog, jsonl, text_column="title")
    )
    parquet = tmp_path / "p.parquet"
    pd.DataFrame({"uid": ["1"]}).to_parquet(parquet)
    assert "missing column 'product_uid'; available columns: uid" in str(
        error_of(load_catalog, parquet, text_column="uid")
    )


def test_unknown_format(tmp_path: Path) -> None:
    path = write(tmp_path / "p.xlsx", "x")
    message = str(error_of(load_catalog, path))
    assert "cannot tell the format" in message and "csv, tsv, jsonl, parquet" in message
    assert "unknown format 'xml'" in str(error_of(load_catalog, path, fmt="xml"))


def test_malformed_json_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "p.jsonl", '{"product_uid": "1", "product_title": "a"}\n\n{"product_uid": 2,\n')
    error = error_of(load_catalog, path)
    assert error.line == 3
    assert str(error).startswith(f"{path}, line 3: malformed JSON")


def test_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes("product_uid,product_title\n1,caf\u00e9\n".encode("latin-1"))
    assert "not valid UTF-8" in str(error_of(load_catalog, path))


def test_too_many_fields_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "product_uid,product_title\n1,a\n2,Saw, 10 inch\n")
    error = error_of(load_catalog, path)
    assert (error.line, error.field) == (3, None)
    assert "3 fields but the header has 2" in str(error)


def test_empty_id_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path / "products.csv", 'product_uid,product_title\n1,"two\nlines"\n  ,Saw\n,Drill\n')
    error = error_of(load_catalog, path)
    assert (error.line, error.field) == (4, "product_uid")
    assert str(error) == f"{path}, line 4, field 'product_uid': empty id (1 more row like this)"


def test_empty_text_names_file_line_and_field(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"product_uid": "1", "product_title": "a"}, {"product_uid": "2"}])
    assert str(error_of(load_catalog, path)) == f"{path}, line 2, field 'product_title': empty text"


def test_parquet_errors_name_the_row(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pd.DataFrame({"product_uid": ["1", None], "product_title": ["a", "b"]}).to_parquet(path)
    error = error_of(load_catalog, path)
    assert (error.row, error.line) == (2, None)
    assert str(error) == f"{path}, row 2, field 'product_uid': empty id"


@pytest.mark.parametrize("label", ["abc", "", "nan", "inf", "-Infinity"])
def test_bad_label_names_file_line_and_field(tmp_path: Path, label: str) -> None:
    path = write(tmp_path / "dev.csv", f"search_term,product_uid,relevance\nsaw,1,3\nsaw,2,{label}\n")
    error = error_of(load_judgments, path, None)
    assert (error.line, error.field) == (3, "relevance")
    expected = "empty label" if not label else f"label {label!r} is not a finite number"
    assert str(error) == f"{path}, line 3, field 'relevance': {expected}"


def test_empty_query_and_item_in_judgments(tmp_path: Path) -> None:
    path = write(tmp_path / "dev.csv", 'search_term,product_uid,relevance\nsaw,1,3\n" \t ",2,1\n')
    assert str(error_of(load_judgments, path, None)) == f"{path}, line 3, field 'search_term': empty query"
    path = write(tmp_path / "dev.csv", "search_term,product_uid,relevance\nsaw,1,3\nsaw,,1\n")
    assert str(error_of(load_judgments, path, None)) == f"{path}, line 3, field 'product_uid': empty item id"


def test_unknown_item_id(tmp_path: Path) -> None:
    path = write(tmp_path / "dev.tsv", "q\tsku\tlabel\nsaw\t001\t3\nsaw\t1\t2\n")
    error = error_of(load_judgments, path, ["001"], query_column="q", item_column="sku", label_column="label")
    assert str(error) == f"{path}, line 3, field 'sku': item id '1' is not in the catalog"


# --- splits ---------------------------------------------------------------------------------------


def judgments_for(queries: list[str]) -> pd.DataFrame:
    rows = [(q, str(i), float(i % 3)) for q in queries for i in range(2)]
    return pd.DataFrame(rows, columns=["query", "item_id", "label"])


def assignment(splits: dict[str, pd.DataFrame]) -> dict[str, str]:
    return {q: name for name, frame in splits.items() for q in queries_of(frame)}


def test_split_is_by_query_and_deterministic_under_shuffling() -> None:
    frame = judgments_for([f"query {i}" for i in range(200)])
    splits = split_by_query(frame, seed=3)
    shuffled = split_by_query(frame.sample(frac=1.0, random_state=1), seed=3)
    assert assignment(splits) == assignment(shuffled)
    seen = [q for part in splits.values() for q in set(part["query"])]
    assert len(seen) == len(set(seen)) == 200  # no query in two splits
    assert sum(len(part) for part in splits.values()) == len(frame)
    assert assignment(split_by_query(frame, seed=4)) != assignment(splits)


def test_split_of_a_query_does_not_depend_on_other_queries() -> None:
    queries = [f"query {i}" for i in range(300)]
    full = assignment(split_by_query(judgments_for(queries)))
    half = assignment(split_by_query(judgments_for(queries[::2])))
    assert all(full[q] == split for q, split in half.items())


def test_split_fractions_roughly_respected() -> None:
    splits = split_by_query(judgments_for([f"q{i}" for i in range(1000)]), fractions=(0.7, 0.2, 0.1))
    counts = {name: frame["query"].nunique() for name, frame in splits.items()}
    assert abs(counts["train"] - 700) < 60
    assert abs(counts["validation"] - 200) < 45
    assert abs(counts["test"] - 100) < 35


def test_split_zero_fraction_stays_empty() -> None:
    splits = split_by_query(judgments_for([f"q{i}" for i in range(50)]), fractions=(0.9, 0.0, 0.1))
    assert splits["validation"].empty and not splits["test"].empty


def test_tiny_split_fills_every_positive_split_deterministically() -> None:
    for seed in range(20):
        queries = ["a", "b", "c"]
        splits = split_by_query(judgments_for(queries), seed=seed)
        assert all(splits[name]["query"].nunique() == 1 for name in ("train", "validation", "test"))
        again = split_by_query(judgments_for(random.Random(seed).sample(queries, 3)), seed=seed)
        assert assignment(again) == assignment(splits)
    two = split_by_query(judgments_for(["a", "b"]))  # fewer queries than splits: nothing is forced
    assert sum(frame["query"].nunique() for frame in two.values()) == 2


@pytest.mark.parametrize(
    "fractions", [(0.5, 0.5, 0.5), (1.2, -0.1, -0.1), (0.8, 0.2), (float("nan"), 0.5, 0.5), (0.3, 0.3, 0.3)]
)
def test_bad_fractions_rejected(fractions) -> None:
    with pytest.raises(ValueError, match="fractions"):
        split_by_query(judgments_for(["a"]), fractions=fractions)


# --- real data ------------------------------------------------------------------------------------


@pytest.mark.shared
@pytest.mark.skipif(not HOMEDEPOT.is_dir(), reason=f"{HOMEDEPOT} is absent")
def test_real_homedepot_files_load_fast() -> None:
    start = time.perf_counter()
    catalog = load_catalog(HOMEDEPOT / "products.csv")
    judgments = load_judgments(HOMEDEPOT / "dev.csv", set(catalog["item_id"]))
    queries = load_queries(HOMEDEPOT / "dev.csv")
    elapsed = time.perf_counter() - start
    assert len(catalog) == 54_667 and catalog.attrs["stats"]["duplicates_merged"] == 0
    assert judgments.attrs["stats"]["rows_read"] == 52_341
    assert len(judgments) == 52_338  # "fence  mesh" and "fence mesh" merge after normalisation
    assert judgments["query"].nunique() == len(queries) == 8_311
    assert judgments["label"].between(1, 3).all()
    assert elapsed < 10


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_catalog_keeps_extra_fields_as_text(tmp_path: Path, fmt: str) -> None:
    frame = pd.DataFrame(
        {
            "sku": ["1", "2", "1"],
            "title": ["Saw", "Drill", "Saw"],
            "brand": ["Acme &amp; Co", "", "Acme"],
            "n": [1, 2, 3],
        }
    )
    path = tmp_path / f"catalog.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "jsonl":
        write_jsonl(path, frame.to_dict("records"))
    else:
        frame.to_parquet(path, index=False)
    catalog = load_catalog(path, id_column="sku", text_column="title", fields=["brand", "n"])
    assert list(catalog.columns) == ["item_id", "text", "brand", "n"]
    assert catalog["brand"].tolist() == ["Acme & Co", ""]  # normalised; a repeated id keeps its first row
    assert catalog["n"].tolist() == ["1", "2"]


def test_missing_field_column_names_file_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "product_uid,product_title,brand\n1,Saw,Acme\n")
    message = str(error_of(load_catalog, path, fields=["brand", "colour"]))
    assert "p.csv" in message and "missing column 'colour'" in message
    assert "reserved" in str(error_of(load_catalog, path, fields=["text"]))


def test_limit_queries_keeps_whole_queries_and_grows_as_a_superset() -> None:
    frame = judgments_for([f"query {i}" for i in range(100)])
    small = limit_queries(frame, 10, seed=0)
    assert small["query"].nunique() == 10
    assert len(small) == 20  # both rows of every kept query
    larger = limit_queries(frame, 30, seed=0)
    assert set(small["query"]) < set(larger["query"])
    assert set(limit_queries(frame, 10, seed=1)["query"]) != set(small["query"])
    assert limit_queries(frame, None).equals(frame) and limit_queries(frame, 500).equals(frame)
