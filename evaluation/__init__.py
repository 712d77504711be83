"""Offline evaluations of the proxies (`edgescore eval`): rank correlation with trained accuracy
(nb201_eval, report) and the hardware-aware study on replay devices (hw_study).

They compute proxies in this process with the server's code, so they need the `[server]` extra;
they may also drive the client and the agent. No deployable imports this package. Importing it
(and its `cli`) loads nothing heavy: the modules that need torch are imported when a command runs.
"""
