"""The forecasting functions on synthetic series (pure: no store, no projection)."""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

import pytest

from projections.forecast import (
    forecast,
    mape,
    next_start,
    regular,
    seasonal_naive,
)

MONDAY = date(2022, 1, 3)


def weekly(n: int, seed: int, *, level: float = 60, slope: float = 0.15, noise: float = 0.08):
    """Trend x yearly season (a summer dip, a December peak) + noise, one value a week."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        day = MONDAY + timedelta(weeks=i)
        year = 2 * math.pi * day.timetuple().tm_yday / 365.25
        season = 1 + 0.25 * math.cos(year - 0.2) + 0.15 * math.sin(2 * year)
        mean = (level + slope * i) * season
        out.append((day, max(0.0, mean * (1 + rng.gauss(0, noise)))))
    return out


def monthly(n: int, seed: int) -> list[tuple[date, float]]:
    rng = random.Random(seed)
    shape = (0.95, 0.9, 1.0, 1.0, 1.0, 0.95, 0.85, 0.65, 1.0, 1.05, 1.15, 1.45)
    out = []
    start = date(2020, 1, 1)
    for i in range(n):
        month = next_start(start, "month", i)
        mean = (200 + 2.5 * i) * shape[month.month - 1]
        out.append((month, mean * (1 + rng.gauss(0, 0.05))))
    return out


class TestMape:
    def test_mean_of_absolute_percentage_errors(self) -> None:
        assert mape([100, 200, 50], [110, 150, 50]) == pytest.approx((10 + 25 + 0) / 3)

    def test_a_zero_actual_has_no_percentage_and_is_left_out(self) -> None:
        assert mape([100, 0, 200], [110, 5, 150]) == pytest.approx(17.5)

    def test_nothing_to_count_is_none(self) -> None:
        assert mape([0, 0], [1, 2]) is None
        assert mape([], []) is None

    def test_over_forecast_and_under_forecast_count_alike(self) -> None:
        assert mape([10], [15]) == mape([10], [5]) == pytest.approx(50)


class TestPeriods:
    def test_months_roll_over_the_year(self) -> None:
        assert next_start(date(2024, 11, 1), "month", 3) == date(2025, 2, 1)
        assert next_start(date(2024, 12, 30), "week") == date(2025, 1, 6)

    def test_gaps_are_zeros_and_one_period_adds_up(self) -> None:
        starts, values = regular(
            [(date(2024, 1, 1), 3), (date(2024, 4, 1), 2), (date(2024, 1, 1), 1)], "month"
        )
        assert starts == [date(2024, m, 1) for m in (1, 2, 3, 4)]
        assert values == [4, 0, 0, 2]

    def test_a_start_off_the_grid_is_refused(self) -> None:
        with pytest.raises(ValueError):
            regular([(MONDAY, 1), (MONDAY + timedelta(days=10), 1)], "week")

    def test_seasonal_naive_repeats_the_last_season(self) -> None:
        values = list(range(1, 25))  # two seasons of 12
        assert seasonal_naive(values, 12, 14) == [*range(13, 25), 13, 14]
        assert seasonal_naive(values[:11], 12, 3) is None


class TestForecast:
    @pytest.mark.parametrize("seed", range(5))
    def test_beats_seasonal_naive_on_weekly_trend_season_and_noise(self, seed: int) -> None:
        result = forecast(weekly(150, seed), period="week", horizon=8)
        bt = result.backtest
        assert bt is not None and bt.mape is not None and bt.baseline_mape is not None
        assert result.model.startswith("harmonic-arima") and bt.model == result.model
        assert bt.mape < bt.baseline_mape

    def test_beats_seasonal_naive_on_average_over_seeds_and_months(self) -> None:
        model, naive = [], []
        for seed in range(6):
            result = forecast(monthly(48, seed), period="month", horizon=8)
            bt = result.backtest
            assert bt is not None and bt.mape is not None and bt.baseline_mape is not None
            assert result.model.startswith("holt-winters") and bt.model.startswith("holt-winters")
            model.append(bt.mape)
            naive.append(bt.baseline_mape)
        assert sum(model) < sum(naive)

    def test_backtest_refits_without_the_last_periods(self) -> None:
        history = weekly(120, 1)
        result = forecast(history, period="week", horizon=8)
        bt = result.backtest
        assert bt is not None
        assert bt.starts == [d for d, _ in history[-8:]]
        assert bt.actual == [v for _, v in history[-8:]]
        assert bt.baseline_predicted == [v for _, v in history[-60:-52]]  # a season back
        assert bt.mape == pytest.approx(mape(bt.actual, bt.predicted))
        assert bt.baseline_mape == pytest.approx(mape(bt.actual, bt.baseline_predicted))

    def test_forecast_follows_the_history_with_a_band_around_it(self) -> None:
        history = weekly(120, 2)
        result = forecast(history, period="week", horizon=8, level=0.9)
        assert result.starts == [history[-1][0] + timedelta(weeks=i) for i in range(1, 9)]
        assert len(result.values) == len(result.lower) == len(result.upper) == 8
        for lo, v, hi in zip(result.lower, result.values, result.upper, strict=True):
            assert 0 <= lo <= v <= hi
        assert result.upper[-1] - result.lower[-1] > 0
        assert result == forecast(history, period="week", horizon=8, level=0.9)

    @pytest.mark.parametrize(
        ("period", "n", "model"),
        [
            ("week", 0, "none"),
            ("week", 1, "mean"),
            ("week", 9, "mean"),
            ("week", 30, "holt-damped"),
            ("week", 60, "seasonal-naive(m=52)"),
            ("week", 65, "harmonic-arima"),
            ("month", 8, "mean"),
            ("month", 11, "holt-damped"),
            ("month", 20, "seasonal-naive(m=12)"),
            ("month", 24, "holt-winters"),
        ],
    )
    def test_short_histories_fall_back_to_simpler_models(
        self, period: str, n: int, model: str
    ) -> None:
        history = weekly(n, 3) if period == "week" else monthly(n, 3)
        result = forecast(history, period=period, horizon=8)  # type: ignore[arg-type]
        assert result.model.startswith(model)
        assert result.history == n
        assert len(result.values) == (8 if n else 0)
        if n > 8:
            assert result.backtest is not None and result.backtest.horizon == 8
        else:
            assert result.backtest is None

    def test_the_backtest_may_fall_back_where_the_forecast_does_not(self) -> None:
        result = forecast(weekly(70, 4), period="week", horizon=8)
        assert result.model.startswith("harmonic-arima")
        assert result.backtest is not None
        assert result.backtest.model == "seasonal-naive(m=52)"  # 62 weeks to refit on

    def test_a_flat_zero_history_forecasts_zero(self) -> None:
        result = forecast([(MONDAY + timedelta(weeks=i), 0.0) for i in range(80)], period="week")
        assert all(v == 0 for v in result.values)
        assert result.backtest is not None and result.backtest.mape is None

    @pytest.mark.parametrize("bad", [{"horizon": 0}, {"level": 1.0}, {"level": 0}])
    def test_bad_arguments_are_refused(self, bad: dict[str, float]) -> None:
        with pytest.raises(ValueError):
            forecast(weekly(20, 0), period="week", **bad)  # type: ignore[arg-type]
