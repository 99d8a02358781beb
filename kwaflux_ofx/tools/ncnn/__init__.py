"""ncnn (.param + .bin) to ONNX: parser.py reads, weights.py loads, graph.py builds, convert.py probes and wraps."""
