"""The edgescore device agent: dials out, measures artifacts with onnxruntime / LiteRT, reports."""
