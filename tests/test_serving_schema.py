"""Property-based run over the OpenAPI schema (schemathesis, bounded examples): no request may cause a 5xx."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore", message=".*httpx.*", category=DeprecationWarning)

from serving_helpers import KEYS, churn_dataset, train_tiny  # noqa: E402

from serving.app import create_app  # noqa: E402
from serving.settings import Settings  # noqa: E402

AUTH = {"Authorization": "Bearer all-key-00005"}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    d = tmp_path_factory.mktemp("schema")
    train_tiny(d / "models", churn_dataset())  # with the churn model, so churn routes and filters run for real
    app = create_app(Settings(models=d / "models", events_db=d / "events.sqlite", api_keys=KEYS,
                              poll_interval=0))
    app.state.service.open()  # what the lifespan does; schemathesis calls the ASGI app without it
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    app.state.service.close()


def _labels() -> list[str]:
    spec = create_app(Settings(api_keys=KEYS)).openapi()
    return [f"{method.upper()} {path}" for path, ops in spec["paths"].items() for method in ops]


@pytest.mark.parametrize("label", _labels())
def test_no_server_errors(api_schema, label):
    operation = next(r.ok() for r in api_schema.get_all_operations() if r.ok().label == label)

    @given(case=operation.as_strategy())
    @settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck),
              database=None)
    def run(case):
        response = case.call(headers=AUTH)
        assert response.status_code < 500, (label, case.path_parameters, case.query, case.body,
                                            response.status_code, response.text[:500])

    run()
