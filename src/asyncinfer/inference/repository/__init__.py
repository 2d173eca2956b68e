"""The model repository: which models exist, how each loads (config, backend, warmup), ensembles."""
