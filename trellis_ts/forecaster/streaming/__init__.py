"""The streaming forecaster's pieces: its per-series state and the one path that advances it
(`state`), what it reads from a panel (`inputs`), its training on crops of whole series
(`training`) and its one-pass backtests (`backtest`)."""
