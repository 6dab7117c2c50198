"""Usage days: when the daily counters roll over.

A *usage day* starts at a configured time of day in a configured time zone (midnight
UTC by default). Every daily counter is keyed by the date of the usage day it belongs
to, so rolling over needs no job: the first query after the boundary simply counts
towards a new date.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def parse_time_of_day(text: str) -> dt.time:
    """``"06:00"`` → ``time(6, 0)``; raises ValueError with a clear message."""
    try:
        hours, minutes = (int(part) for part in text.strip().split(":"))
        return dt.time(hours, minutes)
    except (ValueError, TypeError):
        raise ValueError(
            f"A day boundary must look like HH:MM (e.g. 06:00), not {text!r}."
        ) from None


def parse_timezone(name: str) -> ZoneInfo:
    """The IANA time zone *name* (``"UTC"``, ``"Europe/Berlin"``)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"Unknown time zone {name!r}; use an IANA name like UTC or Europe/Berlin."
        ) from None


@dataclass(frozen=True)
class UsageDays:
    """The calendar of usage days: boundary *starts_at* in time zone *tz*."""

    tz: dt.tzinfo = dt.UTC
    starts_at: dt.time = dt.time(0, 0)

    @classmethod
    def from_config(cls, timezone: str, starts_at: str) -> UsageDays:
        return cls(parse_timezone(timezone), parse_time_of_day(starts_at))

    def _offset(self) -> dt.timedelta:
        return dt.timedelta(hours=self.starts_at.hour, minutes=self.starts_at.minute)

    def day_of(self, moment: dt.datetime) -> dt.date:
        """The usage day an aware *moment* belongs to."""
        local = moment.astimezone(self.tz).replace(tzinfo=None)
        return (local - self._offset()).date()

    def start_of(self, day: dt.date) -> dt.datetime:
        """The aware moment usage day *day* begins."""
        naive = dt.datetime.combine(day, dt.time()) + self._offset()
        return naive.replace(tzinfo=self.tz)

    def resets_at(self, moment: dt.datetime) -> dt.datetime:
        """When the usage day containing *moment* ends (the next boundary)."""
        return self.start_of(self.day_of(moment) + dt.timedelta(days=1))

    def describe_reset(self, moment: dt.datetime) -> str:
        """When the counters next reset, for a message: ``00:00 UTC``, ``06:00 CEST``
        (always within the next 24 hours, so the time is enough)."""
        resets = self.resets_at(moment).astimezone(self.tz)
        zone = resets.tzname() or str(self.tz)
        return f"{resets:%H:%M} {zone}"
