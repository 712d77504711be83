"""Scoring a candidate: its proxy values (stored, in flight or computed; `proxy_values`,
`proxy_cache`), composite proxies such as the ensemble (`composite`), percentiles against the
space's reference populations and the stored latencies (`population`, `percentiles`, `ranks`),
the objectives (`objectives`; a request's in `request_objective`, Pareto studies in `studies`),
and the latency predictor."""
