"""server/budget.py: what one role user may hold of a server-wide budget."""

from __future__ import annotations

import pytest

from server.budget import SHARE, Budget, OverBudget, holder
from server.session import Session


def test_a_role_user_holds_at_most_its_share_and_others_still_fit() -> None:
    budget = Budget(4000, floor=100)
    assert budget.share == 4000 // SHARE
    budget.take(budget.share, "eve")
    with pytest.raises(OverBudget) as refused:
        budget.take(1, "eve")
    assert refused.value.share and "'eve'" in str(refused.value)
    budget.take(budget.share, "bob")  # another role user
    budget.take(1500, None)  # an admin: the whole budget only
    assert budget.used == 2 * budget.share + 1500
    with pytest.raises(OverBudget) as full:
        budget.take(budget.limit - budget.used + 1, None)
    assert not full.value.share
    budget.give(budget.share, "eve")
    assert "eve" not in budget.by and budget.held_by("eve") == 0
    budget.take(10, "eve")
    assert budget.held_by("eve") == 10


def test_the_share_is_never_below_the_floor() -> None:
    budget = Budget(300, floor=200)  # one request of the largest size always fits
    assert budget.share == 200
    budget.take(200, "eve")


def test_negative_and_zero_takes_count_for_the_user_too() -> None:
    budget = Budget(4000)
    budget.take(500, "eve")
    budget.take(-200, "eve")  # a kept statement replaced by a smaller one
    assert budget.held_by("eve") == 300 and budget.used == 300
    budget.give(300, "eve")
    assert budget.by == {} and budget.used == 0


def test_whose_share_a_session_counts_against() -> None:
    assert holder(Session(user_id="joe", role="user")) == "joe"
    assert holder(Session(user_id="root", role="admin")) is None
