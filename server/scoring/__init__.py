"""Combined scoring: rank normalisation against a reference population, objectives (constraint,
MnasNet reward, Pareto rank, weighted rank), proxy ensembles, and the latency predictor."""
