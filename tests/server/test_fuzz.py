"""A bounded fuzz pass over the checked-in OpenAPI schema against the real engine: no answer may be a 5xx."""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

SCHEMA = schemathesis.openapi.from_path(Path(__file__).resolve().parents[2] / "docs" / "openapi.json")
# Shutting the shared engine down would end the other tests' engine; everything else is fair game.
FUZZED = SCHEMA.exclude(path="/v1/shutdown")


@FUZZED.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_no_request_makes_the_engine_fail(case, engine):
    response = case.call(base_url=engine.url, headers={"Authorization": f"Bearer {engine.token}"}, timeout=60)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        answer = response.json()
        assert set(answer) == {"code", "message", "hint"} and answer["code"].isupper()
