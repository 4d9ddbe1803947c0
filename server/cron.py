"""Cron expressions read as standard five-field cron reads them (CREATE SCHEDULE
… CRON), handed to croniter in a form it cannot read otherwise.

croniter 7.0 reads some standard forms its own way: a one-value range ('7-7',
'3-3', 'mon-mon', '1-1/2') as '*' (an hourly schedule ran every minute, a
weekly one daily), a backwards range of names ('sat-sun', 'fri-sun') as
wrapping round the week, and 'N/step' in the day-of-week field as stopping at
Saturday. So each field is read here, by the standard rules, into the set of
values it names, and croniter is given each field but a bare '*' as the list
of those values (day of week 7 as 0). What standard cron does not have, or
cron implementations read differently, is refused (CronError): croniter's
L, W, #, ? and R / H forms, and a day-of-month or day-of-week that starts with
'*' without being '*' beside a restricted other day field (Vixie cron and
cronie take both days then, croniter either)."""

from __future__ import annotations

import re
from functools import lru_cache

FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
NAMES = {3: {n: i + 1 for i, n in enumerate(_MONTHS)}, 4: {n: i for i, n in enumerate(_DAYS)}}
MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_RANDOM = re.compile(r"[RH](?:$|[(/])", re.IGNORECASE)
_PART = re.compile(r"(?:(\*)|([0-9A-Za-z]+)(?:-([0-9A-Za-z]+))?)(?:/([0-9]+))?\Z")
FORMS = ("give numbers, ranges ('1-5'), steps ('*/15', '0-30/10'), lists ('1,15') and, "
         "for months and days of the week, names ('jan', 'mon-fri')")


class CronError(ValueError):
    """Why an expression is not one standard cron reads one way (the message
    names the field)."""


def fields(expr: str) -> list[set[int] | None]:
    """The values each of the five fields names (None: a bare '*'), day of
    week 7 given as 0. `expr`'s fields are separated by single spaces; a
    macro ('@daily') is its five fields."""
    expr = MACROS.get(expr.lower(), expr)
    texts = expr.split(" ")
    if len(texts) != 5:
        raise CronError("give five fields")
    dom, dow = texts[2], texts[4]
    if dom != "*" and dow != "*" and (dom.startswith("*") or dow.startswith("*")):
        raise CronError(
            f"the day-of-month '{dom}' with the day-of-week '{dow}': cron implementations "
            "disagree on whether such a pair names the days matching either field or both "
            "(a field starting with '*'); write the days as a range or list ('1-31/2', '1-5')")
    return [None if text == "*" else _values(i, text) for i, text in enumerate(texts)]


def _values(i: int, text: str) -> set[int]:
    field, (low, high) = FIELDS[i], BOUNDS[i]
    values: set[int] = set()
    for part in text.split(","):
        if _RANDOM.match(part):
            raise CronError(f"the {field} field '{text}' asks for a random or hashed time "
                            "('R' / 'H'), which would change from run to run; give the time")
        found = _PART.match(part)
        if found is None:
            raise CronError(f"the {field} field '{text}' is not standard cron ('{part}'; "
                            f"L, W, # and ? are not taken): {FORMS}")
        star, first_text, last_text, step_text = found.groups()
        first = low if star else _number(i, text, first_text)
        last = (high if star or (step_text and last_text is None)
                else first if last_text is None else _number(i, text, last_text))
        if step_text and not star and last_text is None and i == 4:
            raise CronError(f"the day-of-week field '{text}': cron implementations disagree "
                            f"on where '{part}' ends (Saturday or Sunday as 7); give the "
                            "range, as in '1-5/2'")
        bad = [n for n in (first, last) if not low <= n <= high]
        if bad:
            raise CronError(f"{bad[0]} is out of the {field} field's range {low}-{high}")
        if last < first:
            hint = " (Sunday is 0, or 7 to end a range: '5-7')" if i == 4 else ""
            raise CronError(f"the {field} range '{part}' runs backwards{hint}")
        step = 1 if step_text is None else int(step_text)
        if step == 0:
            raise CronError(f"a step of 0 in the {field} field")
        values.update(range(first, last + 1, step))
    return {0 if i == 4 and v == 7 else v for v in values}


def _number(i: int, text: str, word: str) -> int:
    if word.isdigit():
        return int(word)
    value = NAMES.get(i, {}).get(word.lower())
    if value is None:
        raise CronError(f"the {FIELDS[i]} field '{text}' is not standard cron ('{word}'; "
                        f"L, W, # and ? are not taken): {FORMS}")
    return value


@lru_cache(maxsize=4096)
def croniter_form(expr: str) -> str:
    """`expr` as croniter reads it the standard way: every field but a bare
    '*' as the sorted list of its values. CronError for one `fields` refuses
    (never croniter's own reading of it)."""
    return " ".join("*" if v is None else ",".join(map(str, sorted(v))) for v in fields(expr))


@lru_cache(maxsize=4096)
def refusal(expr: str) -> str | None:
    """Why a stored expression is no longer taken (None: it is). One stored
    before these checks (croniter's L, W or # forms, a '*'-led day field beside
    a restricted one, a day-of-week step from one day) would run as croniter
    reads it, on days standard cron does not name: it is not run."""
    try:
        fields(expr)
    except CronError as exc:
        return str(exc)
    return None
