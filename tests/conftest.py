from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from factories import chat


@pytest.fixture
def support_rows() -> list[dict[str, Any]]:
    """Twenty distinct, valid support conversations (each long enough to be its own near-dup cluster)."""
    topics = [
        ("reset my password", "Open Settings, choose Security and click Reset password; the link lasts one hour."),
        ("download an invoice as PDF", "Open Billing, pick the invoice and press Download; PDFs include your VAT number."),
        ("add a team member", "Go to Team, click Invite and enter their email; they join on your current plan."),
        ("change my billing currency", "Currency is set per workspace under Billing settings before the first invoice."),
        ("cancel my subscription", "Under Billing choose Cancel plan; you keep access until the period ends."),
        ("connect Stripe", "In Integrations pick Stripe and sign in; payments then sync every fifteen minutes."),
        ("export all my data", "Settings, Data export gives a ZIP of CSV files by email within ten minutes."),
        ("enable two-factor login", "Security, Two-factor, scan the QR code with an authenticator app and confirm."),
        ("set up recurring invoices", "Create an invoice, tick Repeat, choose the interval and the first send date."),
        ("get a refund for a double charge", "Reply with both charge dates; duplicates are refunded within five days."),
    ]
    rows = []
    for i, (question, answer) in enumerate(topics * 2):
        variant = "quickly" if i >= len(topics) else "today"
        rows.append(chat(f"How do I {question} {variant}? Ticket {1000 + i}.", f"{answer} (ref {i})"))
    return rows


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"
