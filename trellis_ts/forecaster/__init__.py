"""The fit / predict / evaluate product around the models.

`config` (one frozen `TrellisConfig`), `sizing` (context, horizon and patches from the data),
`inputs` (what fit learns of the inputs' scales), `lightning_module` and `training` (Lightning),
`estimator` (`TrellisForecaster`), `backtest` (rolling-origin scores), `conformal` (intervals),
`warm_start` and `persistence` (save and load, no pickle), `checkpoints` (fit's checkpoint
folder: checked before training, only its own files removed; torch-free).
"""
