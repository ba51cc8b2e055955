"""The browser tests of `test_web_browser.py`, on the local Kafka broker."""

from __future__ import annotations

import pytest

from tests.integration.test_web_browser import (
    _close_contexts,
    browser,
    stack,
    test_a_new_request_appears_live_and_an_approval_completes_the_run,
    test_a_question_is_answered_with_the_form_made_from_its_answer_schema,
    test_an_expired_request_cannot_be_decided,
    test_an_invalid_edit_sends_nothing_and_a_valid_one_shows_the_diff,
    test_two_tabs_decide_once_and_the_second_is_told,
    test_without_the_role_the_card_is_read_only_and_a_forged_post_is_refused,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

__all__ = [
    "_close_contexts",
    "browser",
    "stack",
    "test_a_new_request_appears_live_and_an_approval_completes_the_run",
    "test_a_question_is_answered_with_the_form_made_from_its_answer_schema",
    "test_an_expired_request_cannot_be_decided",
    "test_an_invalid_edit_sends_nothing_and_a_valid_one_shows_the_diff",
    "test_two_tabs_decide_once_and_the_second_is_told",
    "test_without_the_role_the_card_is_read_only_and_a_forged_post_is_refused",
]


@pytest.fixture(scope="module")
def log_address(kafka_bootstrap: str) -> str | None:
    return kafka_bootstrap
