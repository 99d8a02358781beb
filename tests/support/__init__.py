"""Helpers written once: ONNX model builders, generated media, the OFX test host, a Resolve stand-in."""
