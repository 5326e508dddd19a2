from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from loopml.data.contract import ColumnSpec, Contract
from loopml.errors import ContractError
from loopml.features.pipeline import (
    MISSING,
    build_pipeline,
    build_preprocessor,
    category_levels,
    feature_frame,
    feature_importance,
    model_features,
)

pytestmark = pytest.mark.unit


def _contract() -> Contract:
    return Contract(
        rows=400,
        target="label",
        task="binary",
        time_column="ts",
        columns=(
            ColumnSpec(name="age", type="integer", nullable=True, null_rate=0.1, n_unique=50),
            ColumnSpec(
                name="country",
                type="string",
                nullable=True,
                null_rate=0.1,
                n_unique=3,
                categories={"us": 0.5, "de": 0.3, "fr": 0.2},
            ),
            ColumnSpec(
                name="premium",
                type="boolean",
                nullable=False,
                null_rate=0.0,
                n_unique=2,
                categories={"True": 0.5, "False": 0.5},
            ),
            ColumnSpec(name="noise", type="float", nullable=False, null_rate=0.0, n_unique=400),
            ColumnSpec(
                name="ts", type="datetime", role="time", nullable=False, null_rate=0.0, n_unique=400
            ),
            ColumnSpec(name="signup", type="datetime", nullable=False, null_rate=0.0, n_unique=400),
            ColumnSpec(
                name="label",
                type="string",
                role="target",
                nullable=False,
                null_rate=0.0,
                n_unique=2,
                categories={"0": 0.5, "1": 0.5},
            ),
        ),
    )


def _table(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n).astype(float)
    country = rng.choice(["us", "de", "fr"], n).astype(object)
    age[rng.random(n) < 0.1] = np.nan
    country[rng.random(n) < 0.1] = None
    premium = rng.random(n) < 0.5
    noise = rng.normal(size=n)
    logit = 0.08 * (np.nan_to_num(age, nan=45) - 45) + 3.0 * (country == "us")
    y = (logit + rng.logistic(size=n) > 0.7).astype(np.int64)
    frame = pd.DataFrame(
        {
            "age": pd.Series(age).astype("Int64"),
            "country": pd.Series(country, dtype="str"),
            "premium": premium,
            "noise": noise,
            "ts": pd.date_range("2024-01-01", periods=n, freq="h"),
            "signup": pd.date_range("2020-01-01", periods=n, freq="D"),
            "label": y.astype(str),
            "extra": "ignored",
        }
    )
    return frame, y


def test_feature_frame_orders_columns_and_sets_dtypes() -> None:
    frame, _ = _table()
    features = feature_frame(frame, _contract())
    assert list(features.columns) == ["age", "country", "premium", "noise"]
    assert features["age"].dtype == np.float64
    assert features["noise"].dtype == np.float64
    assert features["country"].dtype == object
    assert features["premium"].dtype == object
    assert features["age"].isna().sum() == frame["age"].isna().sum()
    # categorical nulls are written as the MISSING marker: ONNX string inputs hold no NaN
    assert not features["country"].isna().any()
    assert (features["country"] == MISSING).sum() == frame["country"].isna().sum()
    assert all(isinstance(v, str) for v in features["country"])
    assert set(features["premium"]) == {"True", "False"}
    assert features.index.equals(frame.index)


def test_feature_frame_is_idempotent() -> None:
    frame, _ = _table()
    once = feature_frame(frame, _contract())
    pd.testing.assert_frame_equal(feature_frame(once, _contract()), once)


def test_feature_frame_reports_missing_columns() -> None:
    frame, _ = _table()
    with pytest.raises(ContractError, match="lacks 2 feature column") as info:
        feature_frame(frame.drop(columns=["age", "premium"]), _contract())
    assert "age, premium" in info.value.detail


def test_feature_frame_rejects_text_in_numeric_column() -> None:
    frame, _ = _table(10)
    frame["noise"] = frame["noise"].astype(object)
    frame.loc[3, "noise"] = "n/a"
    with pytest.raises(ContractError, match="'noise' should be numeric") as info:
        feature_frame(frame, _contract())
    assert "'n/a'" in info.value.detail


def test_datetime_features_are_not_model_inputs() -> None:
    assert model_features(_contract()) == ["age", "country", "premium", "noise"]


def test_pipeline_handles_nulls_and_unseen_categories() -> None:
    frame, y = _table()
    contract = _contract()
    features = feature_frame(frame, contract)
    pipeline = build_pipeline(
        contract,
        LogisticRegression(max_iter=500),
        scale=True,
        levels=category_levels(features, contract),
    )
    pipeline.fit(features, y)
    new = pd.DataFrame(
        {
            "age": [None, 30, 200],
            "country": ["jp", None, "us"],
            "premium": [None, True, False],
            "noise": [0.0, None, 1.0],
        }
    )
    proba = pipeline.predict_proba(feature_frame(new, contract))
    assert proba.shape == (3, 2)
    assert np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_one_hot_width_is_bounded_and_has_a_missing_column() -> None:
    contract = _contract()
    levels = {"country": ["us", "de"], "premium": ["True", "False"]}
    preprocessor = build_preprocessor(contract, scale=False, levels=levels)
    frame, _ = _table()
    out = preprocessor.fit_transform(feature_frame(frame, contract))
    # 2 numeric + country (us, de, missing) + premium (True, False, missing)
    assert out.shape == (len(frame), 8)
    names = list(preprocessor.get_feature_names_out())
    assert f"cat__country_{MISSING}" in names
    assert "cat__country_fr" not in names
    fr_rows = (frame["country"] == "fr").to_numpy()
    country_cols = [i for i, n in enumerate(names) if n.startswith("cat__country_")]
    assert np.all(out[fr_rows][:, country_cols] == 0.0)
    null_rows = frame["country"].isna().to_numpy()
    missing_col = names.index(f"cat__country_{MISSING}")
    assert null_rows.any()
    np.testing.assert_array_equal(out[:, missing_col], null_rows.astype(float))


def test_category_levels_keeps_most_frequent() -> None:
    contract = _contract()
    frame = pd.DataFrame(
        {
            "age": [1.0] * 6,
            "country": ["a", "b", "b", "c", "c", "c"],
            "premium": ["True"] * 6,
            "noise": [0.0] * 6,
        }
    )
    assert category_levels(frame, contract, max_categories=2)["country"] == ["c", "b"]


def test_contract_categories_are_the_default_levels() -> None:
    preprocessor = build_preprocessor(_contract(), scale=False)
    frame, _ = _table()
    preprocessor.fit(feature_frame(frame, _contract()))
    encoder = preprocessor.named_transformers_["cat"]
    assert list(encoder.categories_[0]) == sorted(["us", "de", "fr", MISSING])


def _fitted(estimator: object, scale: bool) -> tuple[object, pd.DataFrame, np.ndarray]:
    frame, y = _table(600)
    contract = _contract()
    features = feature_frame(frame, contract)
    pipeline = build_pipeline(
        contract, estimator, scale=scale, levels=category_levels(features, contract)
    )
    return pipeline.fit(features, y), frame, y


@pytest.mark.parametrize(
    ("estimator", "scale"),
    [
        (LGBMClassifier(n_estimators=30, verbose=-1, n_jobs=1, importance_type="gain"), False),
        (LogisticRegression(max_iter=500), True),
    ],
    ids=["lightgbm", "linear"],
)
def test_native_importance_sums_to_one_over_original_features(
    estimator: object, scale: bool
) -> None:
    pipeline, _, _ = _fitted(estimator, scale)
    importance = feature_importance(pipeline, _contract())
    assert set(importance.index) == {"age", "country", "premium", "noise"}
    assert importance.sum() == pytest.approx(1.0)
    assert (importance >= 0).all()
    assert list(importance) == sorted(importance, reverse=True)
    # age and country drive the label; the others are noise
    assert set(importance.index[:2]) == {"age", "country"}


def test_permutation_importance_when_no_native_one() -> None:
    pipeline, frame, y = _fitted(HistGradientBoostingClassifier(max_iter=30), False)
    assert feature_importance(pipeline, _contract()).empty
    importance = feature_importance(pipeline, _contract(), frame, y, seed=1)
    assert importance.sum() == pytest.approx(1.0)
    assert importance.index[0] in {"age", "country"}


def test_importance_of_a_dummy_is_empty() -> None:
    pipeline, frame, y = _fitted(DummyClassifier(strategy="prior"), False)
    assert feature_importance(pipeline, _contract(), frame, y).empty


def test_what_validation_accepts_the_pipeline_encodes() -> None:
    """No skew between validation and encoding: a category value that validation calls
    known must land in a real one-hot column, however the export spelled it."""
    from loopml.data.infer import infer_contract
    from loopml.data.validate import validate_table
    from loopml.features.pipeline import build_pipeline

    train = pd.DataFrame(
        {
            "flag": [True, False] * 50,
            "code": [1, 2, 3, 4] * 25,
            "city": ["a", "b"] * 50,
            "y": [0, 1] * 50,
        }
    ).astype({"code": "string"})
    contract = infer_contract(train, target="y", task="binary", entity_key=None, time_column=None)
    served = pd.DataFrame(
        {"flag": ["true", "0", "FALSE", None], "code": ["1", "2", "3", "4"], "city": ["a"] * 4}
    )
    report = validate_table(served, contract, source="served")
    assert not [v for v in report.violations if v.kind in ("unseen_category", "type_mismatch")]
    frame = feature_frame(served, contract)
    assert frame["flag"].tolist() == ["True", "False", "False", MISSING]

    pipeline = build_pipeline(contract, DummyClassifier(), scale=False)
    pipeline.fit(feature_frame(train, contract), train["y"])
    encoded = pipeline.named_steps["features"].transform(frame)
    assert encoded.shape[0] == 4
    # every present value hits exactly one one-hot column per categorical feature
    assert (encoded[:3].sum(axis=1) == 3).all()
