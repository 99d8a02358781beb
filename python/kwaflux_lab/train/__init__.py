"""The trainers, the networks they train and the export of their checkpoints to ONNX."""
