"""Bridges from the client SDK to other tools, each behind its own extra: `optuna`
(`pip install "edgescore[optuna]"`: Optuna's samplers over the spaces, trials scored through the
server). Client-side like the SDK: they import the client and the shared grammar, never the
server, and their tool only where it is used, so that a plain client install works without it.
"""
