"""Plain-message errors, and the translation of SDK exceptions into them.

Every failure a user can hit (missing key, 401/403, unknown model, rate limit, rejected file, failed job)
ends as a `TrainerError`: ftdata's `UserError` (a `click.ClickException`), so any click command prints
`error: <message>` like the rest of ftdata and exits 1 without a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ftdata.cli import UserError

EXIT_DATA_CHECK = 3


class TrainerError(UserError):
    """An operational failure with a message a user can act on (exit 1)."""


class PreflightFailed(UserError):
    """The dataset version breaks the model's rules; nothing was uploaded (exit 3, like `ftdata check`)."""

    exit_code = EXIT_DATA_CHECK


def api_error_text(body: Any, fallback: str) -> str:
    """`message` (with `code`/`param` when present) from an API error body, else the SDK's text."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    if not isinstance(body, dict) or not body.get("message"):
        return fallback
    text = str(body["message"])
    extras = [f"{name} {body[name]}" for name in ("code", "param") if body.get(name)]
    return f"{text} ({', '.join(extras)})" if extras else text


@contextmanager
def api_errors(action: str, base_url: str, key_variable: str) -> Iterator[None]:
    """Turn SDK exceptions raised while doing `action` into TrainerError with a plain message."""
    import openai

    try:
        yield
    except openai.AuthenticationError as exc:
        raise TrainerError(
            f"{action}: the API at {base_url} rejected the key (401): {api_error_text(exc.body, exc.message)}. "
            f"Check {key_variable}."
        ) from None
    except openai.PermissionDeniedError as exc:
        raise TrainerError(
            f"{action}: not permitted (403): {api_error_text(exc.body, exc.message)}. "
            "The key's organisation or project may lack fine-tuning access."
        ) from None
    except openai.RateLimitError as exc:
        detail = api_error_text(exc.body, exc.message)
        if isinstance(exc.body, dict) and exc.body.get("code") == "insufficient_quota":
            raise TrainerError(f"{action}: quota exhausted (429): {detail}") from None
        raise TrainerError(
            f"{action}: still rate limited (429) after retrying with backoff: {detail}. "
            "Wait a little and run the same command again; files already uploaded are reused."
        ) from None
    except openai.NotFoundError as exc:
        raise TrainerError(f"{action}: not found (404): {api_error_text(exc.body, exc.message)}") from None
    except openai.APIStatusError as exc:
        raise TrainerError(
            f"{action}: the API answered {exc.status_code}: {api_error_text(exc.body, exc.message)}"
        ) from None
    except openai.APITimeoutError:
        raise TrainerError(f"{action}: the API at {base_url} did not answer in time") from None
    except openai.APIConnectionError as exc:
        cause = exc.__cause__ or exc
        raise TrainerError(f"{action}: cannot reach {base_url}: {cause}") from None
