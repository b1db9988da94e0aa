"""What the model reads besides the target: covariate roles (`covariates`), calendar features
(`calendar`), future frames (`future`), scaling (`scaling`) and target transforms (`transforms`)."""
