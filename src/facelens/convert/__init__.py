"""convert: dlib network files -> ONNX graphs with the very same weights."""
