"""theo/http/admission.py: a bounded number of requests per model."""

from __future__ import annotations

import pytest

from theo.errors import ServiceUnavailableError
from theo.http.admission import ModelAdmission


def test_requests_past_the_limit_get_503_naming_the_model() -> None:
    admission = ModelAdmission(limit=2)
    with admission.admit("tiny"), admission.admit("tiny"):
        assert admission.active("tiny") == 2
        with pytest.raises(ServiceUnavailableError) as raised, admission.admit("tiny"):
            pass
        assert raised.value.status_code == 503
        assert raised.value.code == "model_overloaded"
        assert "tiny" in raised.value.message
        with admission.admit("base"):  # other models have their own slots
            assert admission.active("base") == 1
    assert admission.active("tiny") == 0


def test_a_slot_is_freed_when_the_request_fails() -> None:
    admission = ModelAdmission(limit=1)
    with pytest.raises(RuntimeError), admission.admit("tiny"):
        raise RuntimeError("engine blew up")
    assert admission.active("tiny") == 0
    with admission.admit("tiny"):
        pass
