"""No client mistake crashes or hangs the server, or gets UNKNOWN or INTERNAL: the bad-input
corpus (every case) and 2,000 hypothesis-fuzzed ModelInferRequest byte strings (bench/soak.py
fuzzes 20,000)."""

from __future__ import annotations

from typing import Any

import pytest

from .._bench import reliability

FUZZ_IN_CI = 2_000


@pytest.mark.timeout(300)
def test_corpus_and_fuzzed_requests_get_client_statuses_only(server: Any) -> None:
    figures = reliability.bad_inputs(server, fuzz_count=FUZZ_IN_CI)
    assert figures["corpus_cases"] >= 200
    assert figures["fuzzed"] == FUZZ_IN_CI
    assert figures["crashes"] == 0, server.log_tail()
    assert figures["hangs"] == 0, figures
    assert figures["unknown_or_internal"] == 0, figures["first_failures"]
    assert figures["other_bad_statuses"] == 0, figures["first_failures"]
    assert figures["statuses"].get("INVALID_ARGUMENT", 0) > 0  # the corpus did reach checks
