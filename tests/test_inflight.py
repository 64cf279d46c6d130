"""Bodies in flight per user: the count, and which routes it covers. (Held
against the real server, with bodies really in flight: tests/test_abuse.py.)"""
from __future__ import annotations

import pytest

from server import create_app
from server.errors import APIError
from server.inflight import BodiesInFlight


def test_a_user_holds_at_most_the_limit_and_others_are_not_affected():
    bodies = BodiesInFlight(2)
    with bodies.hold(1), bodies.hold(1):
        with pytest.raises(APIError) as refused:
            with bodies.hold(1):
                pass  # pragma: no cover - never entered
        assert (refused.value.status, refused.value.code) == (413, "too_many_uploads")
        assert refused.value.headers == {"Retry-After": "1"}
        with bodies.hold(2):
            assert bodies.counts == {1: 2, 2: 1}
    assert bodies.counts == {}  # nothing kept for users with nothing in flight
    with bodies.hold(1), bodies.hold(1):
        pass


def test_a_body_that_fails_is_released():
    bodies = BodiesInFlight(1)
    with pytest.raises(ValueError):
        with bodies.hold(1):
            raise ValueError("the upload broke")
    with bodies.hold(1):
        assert bodies.counts == {1: 1}


def test_every_route_that_takes_an_upload_counts_its_body(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path)})
    counted = {endpoint for endpoint, view in app.view_functions.items() if getattr(view, "receives_body", False)}
    # The routes that read more than a small form (forms.SMALL_BODY_BYTES).
    assert counted == {"buffer.post_buffer", "files.post_load", "pwa.post_share_target", "uploads.post_upload",
                       "uploads.patch_upload"}
