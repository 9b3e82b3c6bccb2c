"""A job's token budget as its concurrent LLM calls draw on it.

Each call reserves what it may cost before it starts: its prompt, estimated by the
one-token-per-4-characters rule, plus the completion tokens it asks for at most (max_tokens).
A call that would pass the budget, counting what the calls in flight have reserved, is not
started. When a call ends, its reservation is replaced by what it cost (the API's `usage`).
Calls in flight can therefore pass the budget only by what their prompts were underestimated,
which is less than one batch of calls.

A job submitted with an API key that has a daily cap (its own, or KEY_DAILY_TOKENS) is held
to that cap too: what the key's jobs spent in the last 24 hours, as last read from the
database (the call log reads it again after each call it records), plus what this job spent
since and holds in flight. Jobs of one key running at once each see the others' spending
after their next call, so together they can pass the cap by at most one batch each.

The LLM client runs on one event loop and reserves and settles without awaiting in between,
so no lock is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType


class BudgetExceeded(RuntimeError):
    """The job's token budget is spent; the message names the budget, spent and reserved."""


@dataclass
class KeyCap:
    """The daily cap of the API key that submitted the job."""

    name: str
    daily_tokens: int


class TokenBudget:
    """`limit` tokens (None: no limit), of which `spent` are spent and `reserved` are held by
    the calls in flight; and the submitting key's daily cap, when it has one."""

    def __init__(self, limit: int | None, spent: int = 0, key: KeyCap | None = None):
        self.limit = limit
        self.spent = spent
        self.reserved = 0
        self.key = key
        self._key_spent = 0  # by all the key's jobs in the window, when last read
        self._spent_at_key_read = spent

    def key_spent_read(self, tokens: int) -> None:
        """What the key's jobs spent in the window, just read from the database (this job's
        settled calls included)."""
        self._key_spent = tokens
        self._spent_at_key_read = self.spent

    def reserve(self, tokens: int) -> Reservation:
        """Hold `tokens` for a call about to start; BudgetExceeded when they do not fit."""
        if self.limit is not None and self.spent + self.reserved + tokens > self.limit:
            raise BudgetExceeded(
                f"token budget exceeded: token_budget is {self.limit}; {self.spent} tokens "
                f"spent and {self.reserved} reserved by calls in flight, the next call may "
                f"cost up to {tokens}"
            )
        if self.key is not None:
            key_spent = self._key_spent + self.spent - self._spent_at_key_read
            if key_spent + self.reserved + tokens > self.key.daily_tokens:
                raise BudgetExceeded(
                    f"daily token cap of API key '{self.key.name}' reached: it may spend "
                    f"{self.key.daily_tokens} tokens in any 24 hours; its jobs spent "
                    f"{key_spent} in the last 24 hours and {self.reserved} are reserved by "
                    f"calls in flight, the next call may cost up to {tokens}; retry the job "
                    "later or raise the key's cap"
                )
        self.reserved += tokens
        return Reservation(self, tokens)


class Reservation:
    """What one call holds of a budget: settled with its real cost when it ends, released
    (spending nothing) when it ends without an answer. A context manager releases on exit
    whatever was not settled."""

    def __init__(self, budget: TokenBudget, tokens: int):
        self._budget = budget
        self.tokens = tokens
        self._open = True

    def settle(self, used: int) -> None:
        """The call cost `used` tokens: they replace the reservation."""
        if self._open:
            self._open = False
            self._budget.reserved -= self.tokens
            self._budget.spent += used

    def release(self) -> None:
        self.settle(0)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
