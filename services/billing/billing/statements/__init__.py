"""Monthly e-bills (HTML and PDF, Chinese and English) and billing reports (CSV and .xlsx).

Pure rendering: it takes plain data the ledger has already summed, checks that the bill
reconciles to the cent, and returns text or bytes. No I/O, no clock, no billing.core.
"""

from billing.statements.html import render_html
from billing.statements.labels import Language
from billing.statements.model import (
    Arrears,
    BillingMonth,
    ChargeBasis,
    ChargeLine,
    ConsumptionByGroup,
    CustomerKind,
    DailyCollections,
    DailyUsage,
    LedgerLine,
    LedgerLineKind,
    MonthlyStatement,
    Payment,
    StatementTotals,
)
from billing.statements.pdf import render_pdf
from billing.statements.reconcile import StatementDoesNotReconcile, check_reconciles
from billing.statements.reports import (
    ARREARS_REPORT,
    CONSUMPTION_BY_GROUP_REPORT,
    DAILY_COLLECTIONS_REPORT,
    Report,
    render_csv,
    render_xlsx,
)

__all__ = [
    "ARREARS_REPORT",
    "CONSUMPTION_BY_GROUP_REPORT",
    "DAILY_COLLECTIONS_REPORT",
    "Arrears",
    "BillingMonth",
    "ChargeBasis",
    "ChargeLine",
    "ConsumptionByGroup",
    "CustomerKind",
    "DailyCollections",
    "DailyUsage",
    "Language",
    "LedgerLine",
    "LedgerLineKind",
    "MonthlyStatement",
    "Payment",
    "Report",
    "StatementDoesNotReconcile",
    "StatementTotals",
    "check_reconciles",
    "render_csv",
    "render_html",
    "render_pdf",
    "render_xlsx",
]
