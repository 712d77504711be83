"""The edgescore scoring server: search spaces, proxies, export, fleet, and the gRPC services."""
