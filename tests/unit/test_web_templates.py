"""The page's templates and static files: every form that changes anything carries the CSRF
token, nothing is loaded from another site, and JSON from people is parsed with bounds."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

from countersign.web.json_input import MAX_DEPTH, depth, parse_json

WEB = Path(str(resources.files("countersign.web")))
TEMPLATES = sorted((WEB / "templates").glob("*.html"))
STATIC = sorted((WEB / "static").iterdir())
INCLUDE = re.compile(r'{%\s*include\s+"([^"]+)"\s*%}')
FORM = re.compile(r"<form\b[^>]*>.*?</form>", re.S | re.I)
EXTERNAL = re.compile(
    r"""(?:src|href|action|hx-\w+|url)\s*[=(]\s*["']?\s*(?:[a-z][\w+.-]*:|//)""", re.I
)


def expanded(path: Path) -> str:
    """A template with its includes inlined (they hold the forms' hidden fields)."""
    text = path.read_text(encoding="utf-8")
    return INCLUDE.sub(lambda m: expanded(WEB / "templates" / m.group(1)), text)


def test_every_form_that_posts_carries_the_csrf_token() -> None:
    posting = [
        (path.name, form)
        for path in TEMPLATES
        for form in FORM.findall(expanded(path))
        if re.search(r'method="post"|hx-post=', form, re.I)
    ]
    assert len(posting) >= 6  # approve, reject, edit, respond, the edit's send, log out, login
    for name, form in posting:
        assert 'name="csrf" value="{{ csrf }}"' in form, (name, form[:200])


@pytest.mark.parametrize("path", [*TEMPLATES, *STATIC], ids=lambda p: p.name)
def test_nothing_is_loaded_from_another_site(path: Path) -> None:
    if path.name.endswith("LICENSE"):
        return
    text = path.read_text(encoding="utf-8")
    found = [m.group(0) for m in EXTERNAL.finditer(text) if "data:" not in m.group(0)]
    assert found == [], f"{path.name} loads from elsewhere: {found[:3]}"


def test_json_from_people_is_bounded() -> None:
    assert parse_json('{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    assert [depth(v) for v in (1, [], {"a": [1, {"b": None}]})] == [0, 1, 3]
    for text, expected in [
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "deeper than"),
        ("[" * 100_000 + "]" * 100_000, "deeper than"),
        ('{"amount": NaN}', "NaN is not a JSON number"),
        ("[Infinity]", "Infinity is not"),
        ('{"a": ', "not JSON"),
        (b"\xff\xfe{", "not JSON"),
    ]:
        with pytest.raises(ValueError, match=expected):
            parse_json(text)
