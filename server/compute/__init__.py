"""The compute plane: proxies and exports in worker processes (or on Ray), off the gRPC front."""
