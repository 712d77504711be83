"""Generated gRPC stubs of the edgescore v1 contract (tools/gen_protos.py)."""
