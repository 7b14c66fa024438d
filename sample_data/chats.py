"""Conversations for sample_data/chat.jsonl: OpenAI chat fine-tuning lines, a few of them deliberately broken.

Imported by generate.py. Each conversation is a list of (role, content) turns; tool-using ones are built
by `tool_conversation`. `MALFORMED` holds the broken lines and where they go in the file.
"""

from __future__ import annotations

import json
from typing import Any

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_invoice",
            "description": "Look up one invoice of the signed-in workspace by its number.",
            "parameters": {
                "type": "object",
                "properties": {"number": {"type": "string", "description": "Invoice number, e.g. INV-1042"}},
                "required": ["number"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_subscription",
            "description": "The workspace's plan, billing period, next charge and payment status.",
            "parameters": {"type": "object", "properties": {}},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "resend_invoice",
            "description": "Email an invoice again, optionally to a different address.",
            "parameters": {
                "type": "object",
                "properties": {"number": {"type": "string"}, "email": {"type": "string"}},
                "required": ["number"],
            },
        },
    },
]

SIMPLE: list[list[tuple[str, str]]] = [
    [("user", "hi, does ledgerly work for a one-person design studio?"),
     ("assistant", "It does. Most solo studios start on Starter ($12/month): unlimited invoices and clients for one user, online payments, estimates and time tracking. If you later bill retainers every month, Growth adds recurring invoices and automatic reminders.")],
    [("user", "How do I stop reminders for one client who always pays late but reliably?"),
     ("assistant", "Open the client, choose Edit → Reminders and switch them off for that client. Their invoices still show as overdue in your reports, but no reminder emails go out to them.")],
    [("user", "Can I change the colour of the Pay button on invoices?"),
     ("assistant", "Yes. The Pay button uses your brand colour from Settings → Branding. Pick a colour there and it applies to the button, headings and the client portal straight away.")],
    [("user", "What happens if a client pays more than the invoice amount?"),
     ("assistant", "The extra amount is kept as a credit on the client. Ledgerly offers to apply it to their next invoice, or you can refund it from the payment's menu if it was an accidental overpayment.")],
    [("user", "is there a way to see how much VAT I collected last quarter"),
     ("assistant", "Open Reports → Tax summary and set the date range to last quarter. It lists the tax collected per rate, with the net and gross amounts, and you can export it as CSV or XLSX for your return.")],
    [("user", "Can two people edit the same invoice at once?"),
     ("assistant", "If two teammates open the same draft, the second one sees a notice that it's being edited. Ledgerly saves changes per field, but to avoid surprises only one person should edit at a time.")],
    [("user", "Do invoices show my bank details?"),
     ("assistant", "Only if you add them. Put your IBAN or account details in Settings → Invoices → Defaults → Payment instructions, and they're printed under the total on every invoice.")],
    [("user", "How do I undo marking an invoice as paid?"),
     ("assistant", "Open the invoice, go to the Payments tab and delete the payment you recorded. The status goes back to Sent or Overdue, depending on the due date. Payments received through a gateway can only be refunded, not deleted.")],
    [("user", "Can my client download all their invoices at once?"),
     ("assistant", "Yes. In the client portal they can select invoices and click Download to get a ZIP of PDFs. You can also send them a statement with every invoice and payment for a period.")],
    [("user", "My invoice PDF is in US letter size, I need A4"),
     ("assistant", "Change the paper size in Settings → Branding → Paper size to A4. It applies to every PDF generated from then on, including invoices you download again later.")],
    [("user", "Does Ledgerly calculate income tax for me?"),
     ("assistant", "No, Ledgerly tracks the sales taxes you charge, like VAT or GST, but not your income tax. Your revenue and expense reports give your accountant the figures they need for it.")],
    [("user", "How do I add a second business address to my invoices?"),
     ("assistant", "Create a second sender profile in Settings → Business profile → Add profile. Each profile has its own address, logo and tax number, and you choose the profile when creating an invoice.")],
    [("user", "Is there a limit on line items per invoice?"),
     ("assistant", "An invoice can hold up to 500 line items. For longer lists, such as detailed timesheets, attach the breakdown as a file and summarise it in a few lines.")],
    [("user", "Do you have a dark mode?"),
     ("assistant", "Yes. Open your avatar menu → Appearance and choose Dark, Light or System to follow your device setting. The mobile apps follow your phone's setting automatically.")],
    [("user", "Can I pay Ledgerly invoices on behalf of a client who can't use the portal?"),
     ("assistant", "You can't pay on a client's behalf through the portal, but you can record the payment yourself once you receive the money. If they want to pay by card over the phone, ask them to use the Pay now link instead, so their card details never pass through you.")],
    [("user", "what time zone are reminder emails sent in"),
     ("assistant", "Reminders go out at 09:00 in your workspace time zone, which you can check under Settings → Workspace → Time zone. Clients in other time zones receive them at the matching local time.")],
    [("user", "Can I require clients to accept my terms before paying?"),
     ("assistant", "Yes. Turn on \"Require acceptance of terms\" in Settings → Payments. Clients then tick a box linking to your terms on the payment page, and the acceptance is logged on the invoice's timeline.")],
    [("user", "Can I see which teammate sent an invoice?"),
     ("assistant", "Yes. The activity timeline on each invoice shows who created, edited and sent it, with the date and time. On Business, the audit log keeps the same record for the whole workspace.")],
]

MULTI_TURN: list[list[tuple[str, str]]] = [
    [("user", "I want to bill a client every month for a retainer."),
     ("assistant", "Recurring invoices are made for that. Create the invoice for the first month, click \"Make recurring\", choose Monthly and the start date, and decide whether each invoice is sent automatically or saved as a draft."),
     ("user", "Can the amount change some months?"),
     ("assistant", "Yes. Choose \"Save as draft\" on the schedule; each month's invoice waits for you to adjust the amount before sending. You can also edit the recurring template itself to change all future invoices.")],
    [("user", "How do I give my accountant access?"),
     ("assistant", "Invite them from Settings → Team and pick the Accountant role. They can work with invoices, payments and reports, but can't change settings or billing."),
     ("user", "Does that cost an extra seat?"),
     ("assistant", "Yes, an accountant counts as a user. If they work with several clients, the free Ledgerly Partner program gives them access without using one of your seats.")],
    [("user", "My client wants invoices in euros but I'm in the UK."),
     ("assistant", "On Growth and above you can set that client's default currency to EUR under Clients → Edit. Their invoices are issued in euros, and your reports convert them to pounds at the ECB rate."),
     ("user", "Will Stripe pay me out in euros?"),
     ("assistant", "That depends on your Stripe settings. By default Stripe converts to your payout currency, pounds; if you add a euro bank account in Stripe, euro payments are paid out in euros without conversion.")],
    [("user", "I'm locked out of my account."),
     ("assistant", "Sorry about that. Is it the password, or the two-factor code that isn't working?"),
     ("user", "The code. I got a new phone."),
     ("assistant", "Use one of your recovery codes in place of the six-digit code. Once you're in, set up two-factor again on the new phone under Settings → Security. If you don't have the recovery codes, support can verify your identity, which takes 1–2 business days.")],
    [("user", "Can I offer my clients a discount if they pay early?"),
     ("assistant", "Yes. In the invoice options turn on \"Early payment discount\" and set the percentage and the number of days, for example 2% if paid within 10 days. The discounted amount is shown on the invoice and applied automatically online."),
     ("user", "And if they pay by bank transfer?"),
     ("assistant", "Then record the payment with the discounted amount and tick \"Early payment discount applied\", so the invoice is marked fully paid rather than partially paid.")],
    [("user", "how do i get my data out if i leave"),
     ("assistant", "The Owner can request a full export under Settings → Data → Export: a ZIP of CSV files plus every invoice PDF, sent by email link."),
     ("user", "can i import that into another app?"),
     ("assistant", "The CSV files use plain column names (client, invoice number, date, amount, tax), so most invoicing and accounting apps can import them. Keep the PDFs as your legal copies of the invoices.")],
    [("user", "We're growing and need SSO."),
     ("assistant", "SAML single sign-on comes with the Business plan, which also includes 10 users, the audit log and priority support."),
     ("user", "Which identity providers?"),
     ("assistant", "Okta, Microsoft Entra ID and Google Workspace have step-by-step guides, and any SAML 2.0 provider works. If you also want automatic user provisioning through SCIM, that's part of Enterprise.")],
    [("user", "Can I hide the quantity column on invoices?"),
     ("assistant", "Yes. In Settings → Invoices → Columns you can hide quantity and rate, so each line shows only the description and amount."),
     ("user", "Will that change old invoices?"),
     ("assistant", "No. Invoices already sent keep their layout. The setting applies to new invoices and to PDFs you regenerate from drafts.")],
]

# Conversations where the first assistant reply is not trained on (weight 0): a greeting we don't want to learn.
WEIGHTED: list[list[tuple[str, str, int | None]]] = [
    [("user", "hello?", None),
     ("assistant", "hi", 0),
     ("user", "How do I add a client?", None),
     ("assistant", "Go to Clients → New client, enter their name and email, and save. You can add an address, tax number and default currency now or later.", 1)],
    [("user", "hey", None),
     ("assistant", "hello! what can i do for you?", 0),
     ("user", "Can invoices be sent on a specific date?", None),
     ("assistant", "Yes. Click the arrow next to Send and choose Schedule, then pick the date and time. The invoice goes out then in your workspace time zone.", 1)],
]


def tool_call(call_id: str, name: str, arguments: dict[str, Any] | str) -> dict[str, Any]:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


def tool_conversations(system: str) -> list[dict[str, Any]]:
    """Conversations where the assistant calls the workspace tools (each reply answers its call)."""
    sys_msg = {"role": "system", "content": system}

    def convo(question: str, calls: list[dict[str, Any]], results: list[Any], answer: str) -> dict[str, Any]:
        replies = [
            {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result)}
            for call, result in zip(calls, results)
        ]
        messages = [sys_msg, {"role": "user", "content": question},
                    {"role": "assistant", "content": None, "tool_calls": calls}, *replies,
                    {"role": "assistant", "content": answer}]
        return {"messages": messages, "tools": TOOLS}

    return [
        convo("Has invoice INV-1042 been paid?",
              [tool_call("call_inv1042", "get_invoice", {"number": "INV-1042"})],
              [{"number": "INV-1042", "status": "paid", "total": "1,250.00 EUR", "paid_on": "2025-03-14"}],
              "Yes, INV-1042 for 1,250.00 EUR was paid in full on 14 March 2025."),
        convo("When is my next charge and how much?",
              [tool_call("call_sub", "get_subscription", {})],
              [{"plan": "Growth", "period": "monthly", "next_charge": "2025-04-02", "amount": "29.00 USD", "status": "active"}],
              "You're on Growth, billed monthly. The next charge is 29.00 USD on 2 April 2025."),
        convo("Please resend INV-2210 to accounts@brightwave.example, the client lost it.",
              [tool_call("call_resend", "resend_invoice", {"number": "INV-2210", "email": "accounts@brightwave.example"})],
              [{"sent": True, "to": "accounts@brightwave.example"}],
              "Done: INV-2210 was sent again to accounts@brightwave.example. It includes the payment link, so they can pay straight from the email."),
        convo("Why is INV-0877 overdue? I thought the client paid.",
              [tool_call("call_inv0877", "get_invoice", {"number": "INV-0877"})],
              [{"number": "INV-0877", "status": "partially_paid", "total": "800.00 USD", "paid": "500.00 USD", "due": "2025-02-28"}],
              "INV-0877 is partially paid: the client paid 500.00 of 800.00 USD, and the remaining 300.00 USD was due on 28 February. You can send a reminder for the balance from the invoice page."),
        convo("Is my subscription OK? I got an email about a failed payment.",
              [tool_call("call_sub2", "get_subscription", {})],
              [{"plan": "Starter", "period": "annual", "next_charge": "2025-05-10", "amount": "120.00 USD", "status": "past_due"}],
              "Your Starter plan is past due: the last charge failed and we'll retry it. Update your card in Settings → Billing → Payment method and click \"Pay now\" to settle it before the final retry."),
        convo("Compare INV-3001 and INV-3002 for me, which one is still open?",
              [tool_call("call_a", "get_invoice", {"number": "INV-3001"}), tool_call("call_b", "get_invoice", {"number": "INV-3002"})],
              [{"number": "INV-3001", "status": "paid", "total": "420.00 GBP"}, {"number": "INV-3002", "status": "sent", "total": "380.00 GBP", "due": "2025-04-15"}],
              "INV-3001 (420.00 GBP) is paid. INV-3002 (380.00 GBP) is still open and due on 15 April 2025."),
    ]


def chat(system: str, turns: list[tuple[str, str]]) -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": system}, *({"role": r, "content": c} for r, c in turns)]}


def weighted_chat(system: str, turns: list[tuple[str, str, int | None]]) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for role, content, weight in turns:
        messages.append({"role": role, "content": content} | ({} if weight is None else {"weight": weight}))
    return {"messages": messages}


def malformed(system: str) -> dict[int, tuple[str, str]]:
    """1-based line number → (problem, the line's text) for the deliberately broken lines."""
    sys_msg = {"role": "system", "content": system}
    wrong_role = {"messages": [sys_msg, {"role": "customer", "content": "Can I get an invoice for last month?"},
                               {"role": "assistant", "content": "Yes, it's in Settings → Billing → History."}]}
    user_last = {"messages": [sys_msg, {"role": "user", "content": "How do I void an invoice?"},
                              {"role": "assistant", "content": "Open it and choose More → Void."},
                              {"role": "user", "content": "And delete it?"}]}
    empty = {"messages": [sys_msg, {"role": "user", "content": "What's the API rate limit?"},
                          {"role": "assistant", "content": ""}]}
    bad_arguments = {"messages": [sys_msg, {"role": "user", "content": "Is INV-1500 paid?"},
                                  {"role": "assistant", "content": None,
                                   "tool_calls": [tool_call("call_bad", "get_invoice", "{number: INV-1500")]},
                                  {"role": "tool", "tool_call_id": "call_bad", "content": "{\"error\": \"bad arguments\"}"},
                                  {"role": "assistant", "content": "Sorry, I couldn't look that invoice up."}],
                     "tools": TOOLS}
    truncated = json.dumps(chat(system, [("user", "Can I export to Excel?"), ("assistant", "Yes, every report has XLSX export.")]), ensure_ascii=False)
    return {
        6: ("broken JSON: the line is cut off mid-string", truncated[: len(truncated) // 2]),
        13: ("wrong role: 'customer' instead of 'user'", json.dumps(wrong_role, ensure_ascii=False)),
        19: ("the last message is from the user", json.dumps(user_last, ensure_ascii=False)),
        26: ("empty assistant content", json.dumps(empty, ensure_ascii=False)),
        31: ("broken JSON: a trailing comma before the closing brace",
             json.dumps(chat(system, [("user", "Do you have a status page?"), ("assistant", "Yes: status.ledgerly.app.")]), ensure_ascii=False)[:-1] + ',}'),
        37: ("a tool call whose arguments are not valid JSON", json.dumps(bad_arguments, ensure_ascii=False)),
    }


def chat_lines(system: str) -> tuple[list[str], dict[int, str]]:
    """The lines of chat.jsonl and, per broken line number, what is wrong with it."""
    good = [chat(system, t) for t in SIMPLE] + [chat(system, t) for t in MULTI_TURN]
    good += [weighted_chat(system, t) for t in WEIGHTED] + tool_conversations(system)
    broken = malformed(system)
    lines: list[str] = []
    queue = iter(good)
    for number in range(1, len(good) + len(broken) + 1):
        lines.append(broken[number][1] if number in broken else json.dumps(next(queue), ensure_ascii=False))
    return lines, {number: problem for number, (problem, _) in broken.items()}
