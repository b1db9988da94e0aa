"""The names the settings choose from, importable without pandas or torch: the command line
checks `--calendar` and `--target-transform` before it loads either (`TrellisConfig` reads them
here; `calendar` and `transforms` implement them)."""

# Calendar features, each a position within its cycle (`calendar.calendar_values`).
CALENDAR_FEATURES = (
    "minute",
    "hour",
    "dayofweek",
    "dayofmonth",
    "dayofyear",
    "weekofyear",
    "month",
    "quarter",
)
# Target transforms (`transforms.forward` / `transforms.inverse`).
TARGET_TRANSFORMS = ("auto", "none", "log1p", "nonnegative")
