"""edgescore: training-free proxy scores plus real edge latency for NAS search loops, over gRPC."""

__version__ = "0.1.0"

# Metadata key under which clients and agents present the fleet / API token.
TOKEN_METADATA_KEY = "x-edgescore-token"
