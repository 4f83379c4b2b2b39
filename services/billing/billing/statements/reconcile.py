"""The e-bill must agree with the ledger to the cent before anyone sees it (billing.md, statements)."""

from __future__ import annotations

from datetime import date

from amiflow_schemas.primitives import Utility

from billing.statements.model import MonthlyStatement
from billing.statements.values import total


class StatementDoesNotReconcile(ValueError):
    """The bill disagrees with itself or with its month, so it must not be sent."""

    def __init__(self, statement: MonthlyStatement, problems: tuple[str, ...]) -> None:
        super().__init__(f"statement of {statement.account_id} for {statement.month} does not reconcile: "
                         + "; ".join(problems))
        self.problems = problems


def check_reconciles(statement: MonthlyStatement) -> None:
    """Raise StatementDoesNotReconcile unless every section adds up and opening + credits - debits = closing."""
    problems = (*_section_problems(statement), *_period_problems(statement))
    if problems:
        raise StatementDoesNotReconcile(statement, problems)


def _section_problems(statement: MonthlyStatement) -> list[str]:
    totals = statement.totals
    sections = (
        ("payment", total(p.amount for p in statement.payments), totals.payments),
        ("charge", total(c.amount for c in statement.charges), totals.charges),
        ("other ledger", total(o.amount for o in statement.other_lines), totals.other),
    )
    problems = [f"{name} lines add up to {lines}, the total says {stated}"
                for name, lines, stated in sections if lines != stated]
    closing = statement.opening_balance + totals.payments + totals.other - totals.charges
    if closing != statement.closing_balance:
        problems.append(f"opening {statement.opening_balance} + payments {totals.payments} + other {totals.other}"
                        f" - charges {totals.charges} = {closing}, not the closing {statement.closing_balance}")
    return problems


def _period_problems(statement: MonthlyStatement) -> list[str]:
    month = statement.month
    problems = [f"payment {p.provider_transaction_id} was made on {statement.local_day(p.paid_at)}, not in {month}"
                for p in statement.payments if statement.local_day(p.paid_at) not in month]
    problems += [f"{line.kind.value} {line.description!r} was posted on {statement.local_day(line.posted_at)}"
                 for line in statement.other_lines if statement.local_day(line.posted_at) not in month]
    problems += [f"{u.utility.value} usage of {u.day} is outside {month}"
                 for u in statement.daily_usage if u.day not in month]
    seen: set[tuple[date, Utility]] = set()
    for usage in statement.daily_usage:
        if (usage.day, usage.utility) in seen:
            problems.append(f"{usage.utility.value} usage of {usage.day} is given twice")
        seen.add((usage.day, usage.utility))
    return problems

