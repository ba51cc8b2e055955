"""Typed calls are what a type checker understands: the example agents are mypy-strict clean
without a single `# type: ignore`, and a call with a wrong argument, a missing one or a
misread result is an error mypy reports (not a run that fails later)."""

from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [
    ROOT / "examples" / "expenses.py",
    ROOT / "examples" / "email_draft.py",
    ROOT / "examples" / "shipping.py",
    ROOT / "examples" / "nondeterministic.py",
]

MISTAKES = """
from engine import RunContext
from examples.expenses import check_receipt, reimburse


async def agent(ctx: RunContext) -> None:
    await ctx.call(reimburse, employee=7, amount=1.0, currency="EUR", purpose="taxi")
    await ctx.call(reimburse, employee="ann", amount=1.0, currency="EUR")
    receipt = (await ctx.call(check_receipt, "ann", 1.0, "EUR")).unwrap()
    receipt["nope"]
"""


def _mypy(*paths: Path) -> tuple[str, int]:
    out, err, status = api.run(
        [
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            *map(str, paths),
        ]
    )
    return out + err, status


def test_the_example_agents_type_check_without_ignores() -> None:
    for path in EXAMPLES:
        assert "type: ignore" not in path.read_text(), path

    report, status = _mypy(*EXAMPLES)

    assert status == 0, report


def test_mistakes_in_typed_calls_are_type_errors(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong_calls.py"
    wrong.write_text(MISTAKES)

    report, status = _mypy(wrong)

    assert status == 1
    assert 'Argument "employee" to "call" of "RunContext" has incompatible type "int"' in report
    assert 'Missing positional argument "purpose" in call to "call" of "RunContext"' in report
    assert '"nope" is not a valid TypedDict key' in report
