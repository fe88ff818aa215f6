"""Where the real datasets are found: PERSONALIZE_DATA_DIR alone when set, else shared/data beside the working
directory or the checkout; a clear error naming every place looked at otherwise."""

from __future__ import annotations

import pytest

from personalize.datasets import DATA_DIR_ENV, DATASETS, DatasetNotFound, dataset_path, find_dataset
from personalize.datasets.locate import data_dir_candidates
from personalize.errors import PersonalizeError


def _fake_data(folder, name="hillstrom"):
    path = folder / DATASETS[name]
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    return path


def test_the_environment_variable_wins_and_is_the_only_place_looked_at(tmp_path, monkeypatch):
    data = tmp_path / "mydata"
    want = _fake_data(data)
    monkeypatch.setenv(DATA_DIR_ENV, str(data))
    assert dataset_path("hillstrom") == want
    assert data_dir_candidates() == [data]
    with pytest.raises(DatasetNotFound) as err:   # a typo in the variable is reported, not hidden by another copy
        dataset_path("cdnow")
    assert f"{DATA_DIR_ENV}={data} has no cdnow/CDNOW_master.txt" in str(err.value)


def test_shared_data_in_a_parent_of_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    want = _fake_data(tmp_path / "shared" / "data")
    deep = tmp_path / "project" / "notebooks"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert dataset_path("hillstrom") == want
    assert find_dataset("hillstrom", start=deep) == want


def test_missing_everywhere_names_the_places_and_the_setting(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setattr("personalize.datasets.locate._checkout_root", lambda: None)
    monkeypatch.chdir(tmp_path)
    # a machine may hold a real shared/data in a parent of the temporary folder (/tmp/shared/data): search
    # only the folders inside this test's own, so that "missing everywhere" is true wherever the test runs
    from personalize.datasets import locate

    real = locate.data_dir_candidates
    monkeypatch.setattr(locate, "data_dir_candidates",
                        lambda start=None: [f for f in real(start) if f.is_relative_to(tmp_path.resolve())])
    assert locate.data_dir_candidates() == [tmp_path.resolve() / "shared" / "data"]
    assert find_dataset("online_retail") is None
    with pytest.raises(DatasetNotFound) as err:
        dataset_path("online_retail")
    msg = str(err.value)
    assert "online_retail/online_retail.parquet" in msg and str(tmp_path / "shared" / "data") in msg
    assert f"set {DATA_DIR_ENV}=" in msg
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, PersonalizeError)


def test_unknown_dataset_name_lists_the_known_ones():
    with pytest.raises(PersonalizeError, match="unknown dataset 'retail'; known: cdnow, cdnow_sample, hillstrom"):
        dataset_path("retail")
