"""lamplighter._dates: datetime's own classes, without running the datetime module."""

from __future__ import annotations

import datetime
import pickle
import subprocess
import sys

from lamplighter import _dates


def test_the_classes_are_datetimes_own() -> None:
    for name in _dates.__all__:
        assert getattr(_dates, name) is getattr(datetime, name), name
    moment = _dates.datetime(2026, 1, 2, 3, 4, 5, tzinfo=_dates.UTC)
    assert type(moment).__module__ == "datetime"
    assert pickle.loads(pickle.dumps(moment)) == moment
    assert moment + _dates.timedelta(days=1) == datetime.datetime(
        2026, 1, 3, 3, 4, 5, tzinfo=datetime.UTC
    )


def test_it_runs_no_datetime_module() -> None:
    code = (
        "import sys\nfrom lamplighter._dates import datetime, UTC\n"
        "datetime.now(UTC).isoformat()\nprint('datetime' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
