"""sonoedge.export: checkpoint -> device bundle (ONNX fp32/fp16/int8 Q/DQ, engine plans, gates)."""
